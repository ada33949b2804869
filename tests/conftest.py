import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
# an op asking for more scratch than its workspace() declared fails the test instead of allocating
# outside the engine's memory plan (perfkit/ops/env.py)
os.environ.setdefault("PERFKIT_STRICT_WORKSPACE", "1")

import perfkit  # noqa: E402
from device_helpers import HAS_CUDA, STRICT, to_host  # noqa: E402,F401  (tests import them from device_helpers)

DEVICES = [pytest.param("cpu", id="cpu"),
           pytest.param("cuda", id="cuda", marks=[pytest.mark.gpu,
                                                  pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU/CuPy")])]


@pytest.fixture(params=DEVICES)
def device(request):
    return perfkit.get_device(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)

