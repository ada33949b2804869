"""Sample networks built with the Network API, with deterministic weights from a seed."""
from .cnn import lenet, resnet_small
from .mlp import mlp, mnist_mlp
from .transformer import transformer_encoder

SAMPLES = {"mnist_mlp": mnist_mlp, "lenet": lenet, "resnet_small": resnet_small, "mlp": mlp,
           "transformer_encoder": transformer_encoder}

__all__ = ["mnist_mlp", "lenet", "resnet_small", "mlp", "transformer_encoder", "SAMPLES", "sample_input"]


def sample_input(network, batch_size: int, seed: int = 0) -> dict:
    """Deterministic random host inputs for a Network or an Engine at ``batch_size``
    (floats uniform in [-1, 1), int32 in [0, 16))."""
    import numpy as np

    from ..arguments import fits_in_host_memory, integer, positive_int
    from ..errors import ArgumentError
    from ..network import Network
    batch_size = positive_int(batch_size, "sample_input: batch_size")
    seed = integer(seed, "sample_input: seed", minimum=0)
    rng = np.random.default_rng(seed)
    if isinstance(network, Network):
        specs = [(t.name, t.shape, t.dtype) for t in network.inputs]
    elif hasattr(network, "input_names") and hasattr(network, "get_binding_shape"):     # an Engine: its bindings
        specs = [(n, network.get_binding_shape(n), str(network.get_binding_dtype(n))) for n in network.input_names]
    else:
        raise ArgumentError(f"sample_input needs a perfkit Network or Engine, not {type(network).__name__}")
    per_sample = sum(int(np.prod(shape)) * 8 for _, shape, _ in specs)    # float64 draws before the cast
    fits_in_host_memory(batch_size * per_sample, f"sample_input at batch {batch_size}", "use a smaller batch_size")
    out = {}
    for name, shape, dtype in specs:
        shape = (batch_size,) + tuple(shape)
        if dtype == "int32":
            out[name] = rng.integers(0, 16, size=shape, dtype=np.int32)
        else:
            out[name] = rng.uniform(-1, 1, size=shape).astype(dtype)
    return out
