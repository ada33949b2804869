"""Helpers the device-parametrised tests import by name (a module of its own: ``from conftest import`` would
pick whichever of the several tests/**/conftest.py pytest loaded last)."""
import numpy as np

import perfkit

HAS_CUDA = perfkit.cuda_available()

# A precision flag only allows a precision: the builder may keep a layer in fp32 where that is faster,
# unless types are strict. Tests of what fp16/bf16 compute force the precision with this.
STRICT = {"strict_types": True}


def to_host(a):
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)
