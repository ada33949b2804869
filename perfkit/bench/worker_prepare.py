"""The Dask worker plugin of perfkit's local cluster: each worker gets ready to measure as it starts.

A worker's first configuration used to pay, one step after the other, for perfkit's imports and the
device in the worker, then for starting its measuring child (:mod:`.measure_process`), whose imports,
CUDA context and first cuBLAS call came before the first build. Started with the worker, the child gets
its device ready while the cluster is still starting and the configurations are handed out, and the
worker's own device (used to name the GPU and to take its host-wide lock) is made in a thread beside it.
Imported only where a local cluster starts (it needs Dask distributed).
"""
from __future__ import annotations

import threading
from typing import Any

from distributed import WorkerPlugin


class PrepareMeasuring(WorkerPlugin):
    name = "perfkit-prepare-measuring"

    def setup(self, worker: Any) -> None:
        from . import measure_process
        from .distributed import local_device_spec
        spec = local_device_spec(None)
        if measure_process.ENABLED:
            measure_process.prestart(spec)
        threading.Thread(target=_device, args=(spec,), daemon=True, name="perfkit-prepare-device").start()


def _device(spec: str) -> None:
    try:
        from ..device import get_device
        get_device(spec)
    except Exception:  # noqa: BLE001 - the first configuration meets the same failure and reports it
        pass
