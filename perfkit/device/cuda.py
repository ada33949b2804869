"""The CUDA device, through CuPy. CuPy is imported only when this device is first created."""
from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ..errors import ArgumentError, DeviceError
from .base import Device
from .memory import DEFAULT_ALIGNMENT, Buffer, host_array_spec, numeric_host_array


def import_cupy() -> Any:
    try:
        import cupy  # noqa: F401
    except Exception as exc:  # ImportError, or a CUDA library that fails to load
        raise DeviceError(
            f"the cuda device needs CuPy, which could not be imported ({exc}); install perfkit with "
            "the extra that matches your driver, e.g. pip install 'perfkit[cuda13]', "
            "or use device='cpu'") from exc
    return cupy


def cuda_device_count() -> int:
    """Number of visible CUDA GPUs; 0 when CuPy or a driver is missing (never raises)."""
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import cupy
            return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:
        return 0


class CudaEvent:
    def __init__(self, cupy: Any) -> None:
        self.raw = cupy.cuda.Event()
        self._cupy = cupy

    def record(self, stream: "CudaStream | None" = None) -> None:
        self.raw.record(None if stream is None else stream.raw)

    def query(self) -> bool:
        return bool(self.raw.done)

    def synchronize(self, timeout: float | None = None) -> None:
        self.raw.synchronize()

    def elapsed_ms_since(self, start: "CudaEvent") -> float:
        self.raw.synchronize()
        return float(self._cupy.cuda.get_elapsed_time(start.raw, self.raw))


class CudaStream:
    """A non-blocking CUDA stream; ``with stream:`` makes CuPy launch its work there."""

    inline = False

    def __init__(self, cupy: Any, name: str = "") -> None:
        self.raw = cupy.cuda.Stream(non_blocking=True)
        self.name = name

    @property
    def id(self) -> int:
        return int(self.raw.ptr)

    def wait_event(self, event: CudaEvent) -> None:
        self.raw.wait_event(event.raw)

    def query(self) -> bool:
        return bool(self.raw.done)

    def synchronize(self) -> None:
        self.raw.synchronize()

    def __enter__(self) -> "CudaStream":
        self.raw.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.raw.__exit__(*exc)

    def __repr__(self) -> str:
        return f"<CudaStream 0x{self.id:x}>"


class CudaAllocator:
    """Device memory from CuPy's default memory pool (cudaMalloc underneath, cached)."""

    def __init__(self, cupy: Any, index: int) -> None:
        self._cupy = cupy
        self._index = index

    def allocate(self, size: int, alignment: int = DEFAULT_ALIGNMENT, flags: int = 0) -> Buffer:
        cp = self._cupy
        with cp.cuda.Device(self._index):
            try:
                mem = cp.get_default_memory_pool().malloc(int(size))
            except cp.cuda.memory.OutOfMemoryError as exc:
                raise MemoryError(str(exc)) from exc
            arr = cp.ndarray((int(size),), dtype=cp.uint8, memptr=mem)
        return Buffer(arr, "cuda")

    def free(self, buffer: Buffer) -> None:
        return None  # the pool takes the block back when the last view of it is gone


class CudaDevice(Device):
    kind = "cuda"

    def __init__(self, index: int = 0) -> None:
        cp = import_cupy()
        count = cuda_device_count()
        if count == 0:
            raise DeviceError("no CUDA GPU is visible (CuPy found none); use device='cpu' "
                              "or check the driver with nvidia-smi")
        if not 0 <= index < count:
            raise DeviceError(f"cuda:{index} does not exist: this machine has {count} GPU(s), "
                              f"cuda:0 to cuda:{count - 1}")
        self._cp = cp
        self.index = index
        self._allocator = CudaAllocator(cp, index)
        props = cp.cuda.runtime.getDeviceProperties(index)
        name = props.get("name", b"GPU")
        self._name = name.decode() if isinstance(name, bytes) else str(name)
        self._props = props
        self._lock = threading.Lock()
        cc = (int(props.get("major", 0)), int(props.get("minor", 0)))
        # tensor cores run float16 from sm_70 and bfloat16 from sm_80
        self.fast_fp16 = cc >= (7, 0)
        self.fast_bf16 = cc >= (8, 0)
        self._identity: dict | None = None

    #: CuPy 14 holds bfloat16 arrays, but its matmul ("data type 'E' not understood") and its sort
    #: refuse them, and perfkit's own CUDA kernels (im2col, epilogues, pooling counts) are written for
    #: float32 and float16: rather than store bf16 in float32 and report memory it does not use, the
    #: builder keeps bf16 layers in fp32 on CUDA (and refuses under strict_types)
    bf16_limitation = ("perfkit's CUDA kernels run float32 and float16 only (CuPy 14's matmul and sort refuse "
                       "bfloat16)")


    @property
    def xp(self) -> Any:
        return self._cp

    @property
    def name(self) -> str:
        return self._name

    def activate(self) -> Any:
        return self._cp.cuda.Device(self.index)

    def create_stream(self) -> CudaStream:
        with self.activate():
            return CudaStream(self._cp)

    def create_event(self) -> CudaEvent:
        with self.activate():
            return CudaEvent(self._cp)

    def synchronize(self) -> None:
        with self.activate():
            self._cp.cuda.Device(self.index).synchronize()

    @property
    def allocator(self) -> CudaAllocator:
        return self._allocator

    def is_device_array(self, a: Any) -> bool:
        return isinstance(a, self._cp.ndarray)

    @staticmethod
    def elapsed_ms(start: Any, end: Any) -> float:
        """Milliseconds between two recorded CUDA events (both must have been reached)."""
        for what, e in (("start", start), ("end", end)):
            if not isinstance(e, CudaEvent):
                raise ArgumentError(f"elapsed_ms: {what} must be an event of this device, not {type(e).__name__} "
                                    f"{e!r:.40}; make one with device.create_event() and record it on a stream")
        return end.elapsed_ms_since(start)

    def _check_stream(self, stream: Any, who: str) -> Any:
        if stream is None:
            return None
        if not isinstance(stream, CudaStream):
            raise ArgumentError(f"{who}: stream must be a stream of this CUDA device or None, not "
                                f"{type(stream).__name__} {stream!r:.40}; make one with device.create_stream()")
        return stream.raw

    def to_device(self, host: Any, stream: Any = None, out: Any = None) -> Any:
        cp = self._cp
        raw = self._check_stream(stream, "to_device")
        host = np.ascontiguousarray(numeric_host_array(host, "to_device: host"))
        if out is not None and (not isinstance(out, cp.ndarray) or out.shape != host.shape):
            raise ArgumentError(f"to_device: out must be a CuPy array of the data's shape {host.shape} or None, not "
                                f"{type(out).__name__} {getattr(out, 'shape', '')}; pass out=None for a new array")
        with self.activate():
            if out is None:
                out = cp.empty(host.shape, host.dtype)
            if host.dtype != out.dtype:
                host = host.astype(out.dtype)
            out.set(host, stream=raw)
        return out

    def to_host(self, a: Any, stream: Any = None, out: Any = None) -> np.ndarray:
        if not isinstance(a, self._cp.ndarray):
            raise ArgumentError(f"to_host: a must be a CuPy array of this device, not {type(a).__name__}; "
                                "copy host data with numpy.array(a) instead")
        raw = self._check_stream(stream, "to_host")
        if out is not None and (not isinstance(out, np.ndarray) or out.shape != a.shape or out.dtype != a.dtype
                                or not out.flags.writeable):
            raise ArgumentError(f"to_host: out must be a writable NumPy array of {a.shape} {a.dtype} or None, not "
                                f"{type(out).__name__} {getattr(out, 'shape', '')} {getattr(out, 'dtype', '')}")
        with self.activate():
            if not a.flags.c_contiguous:
                a = self._cp.ascontiguousarray(a)
            return a.get(stream=raw, out=out)

    def identity(self) -> dict:
        """``gpu_name``, ``gpu_uuid``, ``driver_version`` and ``nvml_index`` of this GPU, as far as CUDA and
        NVML tell (read once). NVML numbers GPUs across the host; CUDA renumbers the GPUs it is allowed to
        see (``CUDA_VISIBLE_DEVICES``), so the NVML GPU of ``cuda:0`` is found by its UUID (else its PCI address)."""
        if self._identity is None:
            self._identity = _identity(self._cp, self._props, self.name)
        return self._identity

    @property
    def nvml_index(self) -> int:
        """NVML's number of this GPU (what ``NvmlSampler`` samples); this device's CUDA index where NVML cannot tell."""
        found = self.identity()["nvml_index"]
        return self.index if found is None else found

    def pinned_empty(self, shape: tuple, dtype: Any = np.float32) -> np.ndarray:
        """A page-locked host array (fast asynchronous copies)."""
        import cupyx
        shape, dtype = host_array_spec(shape, dtype, "pinned_empty")
        return cupyx.empty_pinned(shape, dtype)

    def info(self) -> dict:
        cp = self._cp
        drv = cp.cuda.runtime.driverGetVersion()
        return {"device": self.spec, "device_name": self.name,
                "driver_version": f"{drv // 1000}.{drv % 1000 // 10}",
                "total_memory_bytes": int(self._props.get("totalGlobalMem", 0)),
                "sm_count": int(self._props.get("multiProcessorCount", 0)),
                "compute_capability": f"{self._props.get('major', 0)}.{self._props.get('minor', 0)}",
                "fast_fp16": self.fast_fp16, "fast_bf16": self.fast_bf16,
                "cupy": cp.__version__}


def _identity(cp: Any, props: dict, name: str) -> dict:
    import contextlib
    out: dict = {"gpu_name": name, "gpu_uuid": None, "driver_version": None, "nvml_index": None}
    raw = props.get("uuid")
    if isinstance(raw, (bytes, bytearray)) and len(raw) == 16:
        h = raw.hex()
        out["gpu_uuid"] = f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    elif isinstance(raw, str) and raw:
        out["gpu_uuid"] = raw if raw.startswith("GPU-") else f"GPU-{raw}"
    text = lambda x: x.decode() if isinstance(x, bytes) else str(x)  # noqa: E731
    try:
        import pynvml
        pynvml.nvmlInit()
        out["driver_version"] = text(pynvml.nvmlSystemGetDriverVersion())
        handle = None
        if out["gpu_uuid"]:
            with contextlib.suppress(Exception):
                handle = pynvml.nvmlDeviceGetHandleByUUID(out["gpu_uuid"])
        if handle is None:      # no UUID from CUDA, or NVML knows it not: the PCI address names the same GPU
            bus = "%04x:%02x:%02x.0" % (props.get("pciDomainID", 0), props.get("pciBusID", 0),
                                        props.get("pciDeviceID", 0))
            handle = pynvml.nvmlDeviceGetHandleByPciBusId(bus)
            out["gpu_uuid"] = text(pynvml.nvmlDeviceGetUUID(handle))
        out["nvml_index"] = int(pynvml.nvmlDeviceGetIndex(handle))
    except Exception:  # no nvidia-ml-py or no NVML: CUDA's own driver version, no NVML index
        with contextlib.suppress(Exception):
            drv = cp.cuda.runtime.driverGetVersion()
            out["driver_version"] = out["driver_version"] or f"{drv // 1000}.{drv % 1000 // 10}"
    return out
