"""The explorer tests' fixtures (one tiny real run) and, for modules that still import it from here, the shared
data of explorer_data."""
import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

pytest.importorskip("ipywidgets", reason="the explorers need ipywidgets (pip install perfkit[notebook])")

import perfkit as pk  # noqa: E402
from explorer_data import layer_rows, layers_frame, sweep_frame, sweep_row  # noqa: E402,F401 - test_compare's import


@pytest.fixture(scope="session")
def tiny_run():
    """A real profile of the MNIST MLP on the CPU: 4 inferences, layers and memory."""
    net = pk.models.mnist_mlp()
    engine = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=4))
    ctx = engine.create_execution_context()
    x = pk.models.sample_input(net, 4)
    with pk.profile(ctx, gpu_metrics=False, baseline=False) as run:
        for _ in range(4):
            ctx.execute(x)
    return run
