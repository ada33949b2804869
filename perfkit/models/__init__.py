"""Sample networks built with the Network API, with deterministic weights from a seed."""
from .cnn import lenet, resnet_small
from .mlp import mlp, mnist_mlp
from .transformer import transformer_encoder

SAMPLES = {"mnist_mlp": mnist_mlp, "lenet": lenet, "resnet_small": resnet_small, "mlp": mlp,
           "transformer_encoder": transformer_encoder}

__all__ = ["mnist_mlp", "lenet", "resnet_small", "mlp", "transformer_encoder", "SAMPLES", "sample_input"]


def sample_input(network, batch_size: int, seed: int = 0) -> dict:
    """Deterministic random inputs for ``network`` at ``batch_size`` (float in [-1, 1), int32 in [0, 16))."""
    import numpy as np
    rng = np.random.default_rng(seed)
    out = {}
    for t in network.inputs:
        shape = (batch_size,) + t.shape
        if t.dtype == "int32":
            out[t.name] = rng.integers(0, 16, size=shape, dtype=np.int32)
        else:
            out[t.name] = rng.uniform(-1, 1, size=shape).astype(t.dtype)
    return out
