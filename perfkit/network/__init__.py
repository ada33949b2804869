"""What to run: :class:`Network` definitions made of :class:`Layer` and :class:`Tensor` objects."""
from .network import PRECISIONS, Network
from .tensor import Layer, Tensor

__all__ = ["Network", "Layer", "Tensor", "PRECISIONS"]
