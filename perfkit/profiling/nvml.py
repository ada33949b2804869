"""NvmlSampler: GPU utilisation, memory, clocks, power, temperature and throttle reasons, sampled by
a background thread into the ``gpu_samples`` frame. Without NVML (no GPU, no driver, no
nvidia-ml-py) it yields an empty frame and one clear message, never an exception."""
from __future__ import annotations

import threading
import time
from typing import Any

import pandas as pd

from ..frames.schemas import GPU_SAMPLES

_REASONS = {0x1: "gpu_idle", 0x2: "applications_clocks", 0x4: "sw_power_cap", 0x8: "hw_slowdown",
            0x10: "sync_boost", 0x20: "sw_thermal", 0x40: "hw_thermal", 0x80: "hw_power_brake",
            0x100: "display_clocks"}


def throttle_names(mask: int) -> str:
    return "|".join(n for bit, n in _REASONS.items() if mask & bit)


class NvmlSampler:
    """``with NvmlSampler(index=0, interval_ms=10) as s: ...`` then ``s.frame``."""

    def __init__(self, index: int = 0, interval_ms: float = 10.0):
        from ..arguments import integer, number
        self.index = integer(index, "NvmlSampler: index (a GPU number)", minimum=0)
        self.interval_s = max(number(interval_ms, "NvmlSampler: interval_ms", 0, exclusive_minimum=True), 1.0) / 1e3
        self.message = ""
        self._rows: list = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._nvml: Any = None
        self._handle: Any = None
        self.call_cost_us = float("nan")

    def _init(self) -> bool:
        try:
            import pynvml
            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(self.index)
            self._nvml = pynvml
            return True
        except Exception as exc:  # ImportError, NVMLError (no driver / no GPU)
            self.message = (f"GPU metrics unavailable: NVML could not be used ({type(exc).__name__}: {exc}); "
                            "the gpu frame is empty. Install nvidia-ml-py and run on a machine with an NVIDIA driver.")
            return False

    def sample(self) -> dict:
        if self._nvml is None and not self._init():
            from ..errors import DeviceError
            raise DeviceError(self.message)
        n, h = self._nvml, self._handle
        t0 = time.perf_counter_ns()
        util = n.nvmlDeviceGetUtilizationRates(h)
        mem = n.nvmlDeviceGetMemoryInfo(h)
        row = {"ts_ns": t0, "gpu": self.index, "util_gpu_pct": float(util.gpu), "util_mem_pct": float(util.memory),
               "mem_used_bytes": int(mem.used),
               "sm_clock_mhz": float(n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM)),
               "mem_clock_mhz": float(n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_MEM)),
               "power_w": n.nvmlDeviceGetPowerUsage(h) / 1e3,
               "power_limit_w": n.nvmlDeviceGetEnforcedPowerLimit(h) / 1e3,
               "temperature_c": float(n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU)), "throttle_reasons": ""}
        try:
            get = getattr(n, "nvmlDeviceGetCurrentClocksEventReasons", None) or n.nvmlDeviceGetCurrentClocksThrottleReasons
            row["throttle_reasons"] = throttle_names(int(get(h)))
        except Exception:
            pass
        return row

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._rows.append(self.sample())
            except Exception as exc:
                self.message = f"GPU metrics stopped: {type(exc).__name__}: {exc}"
                return
            self._stop.wait(self.interval_s)

    def start(self) -> "NvmlSampler":
        if self._thread is None and self._init():
            t0 = time.perf_counter_ns()
            self._rows.append(self.sample())
            self.call_cost_us = (time.perf_counter_ns() - t0) / 1e3
            self._thread = threading.Thread(target=self._run, name="perfkit-nvml", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            try:
                self._rows.append(self.sample())
            except Exception:
                pass

    def __enter__(self) -> "NvmlSampler":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def frame(self) -> pd.DataFrame:
        return GPU_SAMPLES.frame(list(self._rows), {"message": self.message, "interval_ms": self.interval_s * 1e3})
