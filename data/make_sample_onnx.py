"""Writes data/sample_cnn.onnx: a small ResNet-style CNN (conv + batch norm + ReLU stem, max pool, three
residual blocks with strided 1x1 projection shortcuts, global average pool, Gemm to 10 classes) on
(N, 3, 32, 32) images, with a symbolic batch dimension "N", built with onnx.helper from a fixed seed
(perfkit.onnx.samples.resnet_cnn), so running it again writes the same bytes.

    python data/make_sample_onnx.py            # rewrites data/sample_cnn.onnx
    python data/make_sample_onnx.py --out x.onnx
"""
from __future__ import annotations

import argparse
import os

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(HERE, "sample_cnn.onnx")


def sample_model():
    from perfkit.onnx.samples import resnet_cnn
    m = resnet_cnn(image=32, widths=(8, 16, 32), classes=10, seed=2026)
    m.graph.name = "sample_cnn"
    m.doc_string = "perfkit's sample ONNX model: a ResNet-style CNN, random weights (seed 2026), written by " \
                   "data/make_sample_onnx.py"
    return m


def write(path: str = DEFAULT) -> str:
    data = sample_model().SerializeToString(deterministic=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=DEFAULT, help="where to write the model (default: data/sample_cnn.onnx)")
    print(write(ap.parse_args().out))
