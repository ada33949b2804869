"""One file per layer type; importing this package registers them all (an explicit list, no scanning)."""
from . import (activation, concatenation, constant, convolution, elementwise, fully_connected,  # noqa: F401
               gather, identity, lrn, matrix_multiply, mlp, padding, plugin, pooling, reduce, scale, shuffle,
               softmax, topk, unary)
from . import deconvolution, expand, normalization, prelu, resize, select, slice  # noqa: F401  (layers ONNX models need)
from .base import Cost, Op, TensorSpec, get_op, register_op, registered_ops
from .env import Env
from .plugin import get_plugin, register_plugin, registered_plugins, unregister_plugin

__all__ = ["Op", "TensorSpec", "Cost", "Env", "get_op", "register_op", "registered_ops",
           "register_plugin", "unregister_plugin", "get_plugin", "registered_plugins"]
