"""Convolutional sample networks: LeNet and a small ResNet."""
from __future__ import annotations

import numpy as np

from ..arguments import integer, positive_int
from ..errors import NetworkDefinitionError
from ..network import Network
from ._init import check_weight_memory, he, seeded, small

MAX_BLOCKS = 1000   # a sample network; more blocks than this is a mistake, not a benchmark


def lenet(seed: int = 0) -> Network:
    """LeNet as in the Caffe MNIST sample: conv1 (20 5x5) -> pool1 -> conv2 (50 5x5) -> pool2 ->
    ip1 (500) -> relu1 -> ip2 (10) -> prob."""
    rng = seeded(seed, "lenet")
    net = Network("lenet")
    x = net.add_input("data", (1, 28, 28))
    x = net.add_convolution(x, 20, 5, he(rng, (20, 1, 5, 5), 25), small(rng, (20,)), name="conv1").output
    x = net.add_pooling(x, "max", 2, 2, name="pool1").output
    x = net.add_convolution(x, 50, 5, he(rng, (50, 20, 5, 5), 500), small(rng, (50,)), name="conv2").output
    x = net.add_pooling(x, "max", 2, 2, name="pool2").output
    x = net.add_fully_connected(x, 500, he(rng, (500, 800), 800), small(rng, (500,)), name="ip1").output
    x = net.add_activation(x, "relu", name="relu1").output
    x = net.add_fully_connected(x, 10, he(rng, (10, 500), 500), small(rng, (10,)), name="ip2").output
    net.mark_output(net.add_softmax(x, 0, name="prob").output)
    return net


def _batch_norm(net: Network, x, channels: int, rng: np.random.Generator, name: str):
    """Inference batch-norm as a per-channel scale layer: y = x * gamma/sqrt(var+eps) + (beta - mean*that)."""
    gamma = rng.uniform(0.8, 1.2, channels).astype(np.float32)
    beta = (rng.standard_normal(channels) * 0.05).astype(np.float32)
    mean = (rng.standard_normal(channels) * 0.05).astype(np.float32)
    var = rng.uniform(0.8, 1.2, channels).astype(np.float32)
    scale = gamma / np.sqrt(var + 1e-5)
    return net.add_scale(x, "channel", shift=beta - mean * scale, scale=scale, name=name).output


def resnet_small(seed: int = 0, width: int = 16, blocks: tuple = (2, 2, 2), num_classes: int = 10,
                 image: int = 32) -> Network:
    """A CIFAR-style ResNet: a 3x3 stem, then stages of basic blocks (conv-bn-relu-conv-bn plus a
    shortcut, summed, then relu), doubling channels and halving resolution per stage, global
    average pooling, a fully connected classifier and softmax."""
    width = positive_int(width, "resnet_small: width")
    num_classes = positive_int(num_classes, "resnet_small: num_classes")
    image = positive_int(image, "resnet_small: image")
    if isinstance(blocks, (str, bytes)) or not isinstance(blocks, (tuple, list)) or not blocks:
        raise NetworkDefinitionError(f"resnet_small: blocks must be a non-empty tuple of ints (blocks per stage), "
                                     f"not {blocks!r}")
    blocks = tuple(integer(b, "resnet_small: blocks per stage", 1, MAX_BLOCKS) for b in blocks)
    if sum(blocks) > MAX_BLOCKS:
        raise NetworkDefinitionError(f"resnet_small: {sum(blocks)} blocks in all; at most {MAX_BLOCKS}")
    if image < 2 ** (len(blocks) - 1):
        raise NetworkDefinitionError(f"resnet_small: image {image} is too small for {len(blocks)} stages that "
                                     f"each halve it; use image >= {2 ** (len(blocks) - 1)}")
    widest = width * 2 ** (len(blocks) - 1)
    check_weight_memory(sum(n * 3 * 9 * (width * 2 ** s) ** 2 for s, n in enumerate(blocks))
                        + widest * num_classes, "resnet_small")
    rng = seeded(seed, "resnet_small")
    net = Network("resnet_small")
    x = net.add_input("data", (3, image, image))

    def conv(x, cin, cout, k, stride, name):
        return net.add_convolution(x, cout, k, he(rng, (cout, cin, k, k), cin * k * k), None, stride=stride,
                                   padding=k // 2, name=name).output

    x = conv(x, 3, width, 3, 1, "stem_conv")
    x = _batch_norm(net, x, width, rng, "stem_bn")
    x = net.add_activation(x, "relu", name="stem_relu").output
    cin = width
    for s, nblocks in enumerate(blocks, start=1):
        cout = width * 2 ** (s - 1)
        for bi in range(1, nblocks + 1):
            stride = 2 if (bi == 1 and s > 1) else 1
            p = f"s{s}b{bi}"
            y = conv(x, cin, cout, 3, stride, f"{p}_conv1")
            y = _batch_norm(net, y, cout, rng, f"{p}_bn1")
            y = net.add_activation(y, "relu", name=f"{p}_relu1").output
            y = conv(y, cout, cout, 3, 1, f"{p}_conv2")
            y = _batch_norm(net, y, cout, rng, f"{p}_bn2")
            if stride != 1 or cin != cout:
                sc = conv(x, cin, cout, 1, stride, f"{p}_proj")
                sc = _batch_norm(net, sc, cout, rng, f"{p}_proj_bn")
            else:
                sc = x
            y = net.add_elementwise(y, sc, "sum", name=f"{p}_add").output
            x = net.add_activation(y, "relu", name=f"{p}_relu2").output
            cin = cout
    x = net.add_reduce(x, "avg", axes=(1, 2), keep_dims=True, name="gap").output
    x = net.add_fully_connected(x, num_classes, he(rng, (num_classes, cin), cin), small(rng, (num_classes,)),
                                name="fc").output
    net.mark_output(net.add_softmax(x, 0, name="prob").output)
    return net
