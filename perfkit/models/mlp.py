"""Multilayer perceptrons, including the guide's MNIST network."""
from __future__ import annotations

from typing import Sequence

from ..arguments import positive_int
from ..errors import NetworkDefinitionError
from ..network import Network
from ._init import check_weight_memory, he, seeded, small


def mnist_mlp(seed: int = 0) -> Network:
    """The guide's MNIST example: ``data`` (1x28x28 = 784 values) -> ``ip1`` fully connected 784->500
    -> ``relu1`` -> ``ip2`` fully connected 500->10 -> ``prob`` softmax."""
    rng = seeded(seed, "mnist_mlp")
    net = Network("mnist_mlp")
    data = net.add_input("data", (1, 28, 28))
    ip1 = net.add_fully_connected(data, 500, he(rng, (500, 784), 784), small(rng, (500,)), name="ip1")
    relu1 = net.add_activation(ip1.output, "relu", name="relu1")
    ip2 = net.add_fully_connected(relu1.output, 10, he(rng, (10, 500), 500), small(rng, (10,)), name="ip2")
    prob = net.add_softmax(ip2.output, axis=0, name="prob")
    net.mark_output(prob.output)
    return net


def mlp(widths: Sequence[int] = (784, 1024, 1024, 10), activation: str = "relu", seed: int = 0,
        name: str | None = None) -> Network:
    """Fully connected layers ``fc1..fcN`` between ``widths[0]`` inputs and ``widths[-1]`` outputs,
    with an activation after each hidden layer."""
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
        raise NetworkDefinitionError(f"mlp widths must be a sequence of at least two positive ints, not {widths!r}")
    widths = [positive_int(w, "mlp: each width") for w in widths]
    if len(widths) < 2:
        raise NetworkDefinitionError(f"mlp widths must be at least two positive ints, got {widths}")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise NetworkDefinitionError(f"mlp: name must be a non-empty string or None, not {name!r}")
    check_weight_memory(sum(a * b for a, b in zip(widths[:-1], widths[1:])), "mlp")
    rng = seeded(seed, "mlp")
    net = Network(name or "mlp_" + "x".join(map(str, widths)))
    x = net.add_input("data", (widths[0],))
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]), start=1):
        x = net.add_fully_connected(x, b, he(rng, (b, a), a), small(rng, (b,)), name=f"fc{i}").output
        if i < len(widths) - 1:
            x = net.add_activation(x, activation, name=f"act{i}").output
    net.mark_output(x, "output")
    return net
