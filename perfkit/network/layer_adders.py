"""The ``Network.add_*`` methods: one thin, documented wrapper per layer type over ``add_layer``."""
from __future__ import annotations

from typing import Any, Sequence

from ..arguments import integer
from ..errors import NetworkDefinitionError


def _ints(value: Any, what: str, minimum: int | None = None, allow_none: bool = False) -> Any:
    """An int, or a tuple or list of ints; bools, floats (even 2.0) and strings are refused, so
    ``stride=True`` or ``window=2.5`` never become 1 or 2 silently. Values are returned unchanged."""
    if value is None and allow_none:
        return value
    items = value if isinstance(value, (tuple, list)) else [value]
    for v in items:
        integer(v, what, minimum)
    return value


def _tensor_list(inputs: Any, what: str) -> list:
    if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
        raise NetworkDefinitionError(f"{what}: inputs must be a list of tensors, not {inputs!r}")
    return list(inputs)


class LayerAdders:
    """Mixed into :class:`~perfkit.network.Network`; each method returns the new layer."""

    def add_layer(self, op_type: str, inputs: Any, params: dict | None = None, weights: dict | None = None,
                  name: str | None = None) -> Any:  # implemented by Network
        raise NotImplementedError

    def add_fully_connected(self, input: Any, num_outputs: int, kernel: Any, bias: Any = None,
                            name: str | None = None) -> Any:
        """``y = kernel @ flatten(x) + bias``; ``kernel`` is (num_outputs, inputs per sample)."""
        _ints(num_outputs, "add_fully_connected: num_outputs", 1)
        return self.add_layer("fully_connected", [input], {"num_outputs": num_outputs},
                              {"kernel": kernel, "bias": bias}, name)

    def add_matrix_multiply(self, a: Any, b: Any, transpose_a: bool = False, transpose_b: bool = False,
                            name: str | None = None) -> Any:
        """Per-sample ``op(a) @ op(b)`` over the last two dims; leading dims broadcast."""
        return self.add_layer("matrix_multiply", [a, b], {"transpose_a": transpose_a, "transpose_b": transpose_b},
                              None, name)

    def add_convolution(self, input: Any, num_output_maps: int, kernel_size: Any, kernel: Any, bias: Any = None,
                        stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1,
                        name: str | None = None) -> Any:
        """2-D convolution of a (C, H, W) input; ``kernel`` is (K, C/groups, kh, kw)."""
        _ints(num_output_maps, "add_convolution: num_output_maps", 1)
        _ints(kernel_size, "add_convolution: kernel_size", 1)
        _ints(stride, "add_convolution: stride", 1)
        _ints(padding, "add_convolution: padding", 0)
        _ints(dilation, "add_convolution: dilation", 1)
        _ints(groups, "add_convolution: groups", 1)
        return self.add_layer("convolution", [input],
                              {"num_output_maps": num_output_maps, "kernel_size": kernel_size, "stride": stride,
                               "padding": padding, "dilation": dilation, "groups": groups},
                              {"kernel": kernel, "bias": bias}, name)

    def add_deconvolution(self, input: Any, num_output_maps: int, kernel_size: Any, kernel: Any, bias: Any = None,
                          stride: Any = 1, padding: Any = 0, post_padding: Any = None, dilation: Any = 1,
                          groups: int = 1, output_padding: Any = 0, name: str | None = None) -> Any:
        """Transposed 2-D convolution (ONNX ConvTranspose) of a (C, H, W) input; ``kernel`` is
        (C, num_output_maps/groups, kh, kw). ``padding``: begin pads (top, left); ``post_padding``: end
        pads (default ``padding``); out H = (H-1)*sh + dh*(kh-1) + 1 + output_padding - pads (negative
        pads extend the output, as ONNX's output_shape may ask)."""
        _ints(num_output_maps, "add_deconvolution: num_output_maps", 1)
        _ints(kernel_size, "add_deconvolution: kernel_size", 1)
        _ints(stride, "add_deconvolution: stride", 1)
        _ints(padding, "add_deconvolution: padding")                 # negative pads extend the output
        _ints(post_padding, "add_deconvolution: post_padding", allow_none=True)
        _ints(dilation, "add_deconvolution: dilation", 1)
        _ints(groups, "add_deconvolution: groups", 1)
        _ints(output_padding, "add_deconvolution: output_padding", 0)
        return self.add_layer("deconvolution", [input],
                              {"num_output_maps": num_output_maps, "kernel_size": kernel_size, "stride": stride,
                               "padding": padding, "post_padding": post_padding, "dilation": dilation,
                               "groups": groups, "output_padding": output_padding},
                              {"kernel": kernel, "bias": bias}, name)

    def add_activation(self, input: Any, activation: str = "relu", alpha: float | None = None,
                       beta: float | None = None, name: str | None = None) -> Any:
        """relu, sigmoid, tanh, leaky_relu, elu, selu, gelu, gelu_tanh, clip, softplus, softsign,
        hard_sigmoid, scaled_tanh (``alpha``/``beta`` as in TensorRT); hard_swish, thresholded_relu,
        celu, mish (``alpha``/``beta`` as the ONNX attributes)."""
        return self.add_layer("activation", [input], {"activation": activation, "alpha": alpha, "beta": beta},
                              None, name)

    def add_normalization(self, input: Any, scale: Any, bias: Any, axes: Any, epsilon: float = 1e-5,
                          num_groups: int = 1, statistics: bool = False, name: str | None = None) -> Any:
        """``(x - mean) / sqrt(var + epsilon) * scale + bias``, statistics over per-sample ``axes``;
        ``scale``/``bias`` arrays (or None) broadcasting to the input. Layer norm: the trailing axes and
        their shape; instance norm: axes 1..rank-1, (C, 1, 1); group norm: also ``num_groups`` > 1
        (1: no grouping, as TensorRT; ONNX GroupNormalization with one group is axes 0..rank-1).
        ``statistics=True``: outputs 1 and 2 are the mean and 1/sqrt(var + epsilon) (ONNX's Mean, InvStdDev)."""
        _ints(axes, "add_normalization: axes")
        _ints(num_groups, "add_normalization: num_groups", 1)
        return self.add_layer("normalization", [input], {"axes": axes, "epsilon": epsilon, "num_groups": num_groups,
                                                         "statistics": statistics},
                              {"scale": scale, "bias": bias}, name)

    def add_parametric_relu(self, input: Any, slope: Any, name: str | None = None) -> Any:
        """ONNX PRelu: ``x`` where ``x >= 0`` else ``slope * x``; ``slope`` is a tensor of the input's
        per-sample rank whose dims are the input's or 1 (per channel: (C, 1, 1)); usually a constant."""
        return self.add_layer("parametric_relu", [input, slope], {}, None, name)

    def add_scale(self, input: Any, mode: str = "uniform", shift: Any = None, scale: Any = None,
                  power: Any = None, channel_axis: int = 0, name: str | None = None) -> Any:
        """``(x * scale + shift) ** power``; mode ``uniform``, ``channel`` or ``elementwise``."""
        _ints(channel_axis, "add_scale: channel_axis")
        return self.add_layer("scale", [input], {"mode": mode, "channel_axis": channel_axis},
                              {"shift": shift, "scale": scale, "power": power}, name)

    def add_elementwise(self, a: Any, b: Any, op: str, name: str | None = None) -> Any:
        """sum, prod, sub, div, max, min, pow, mod (Python's sign), fmod (C's) of two tensors of equal
        per-sample rank (1-sized dims broadcast); equal, less, greater, less_equal, greater_equal, and,
        or, xor give int32 0/1 (ONNX's bool; non-zero is true)."""
        return self.add_layer("elementwise", [a, b], {"op": op}, None, name)

    def add_unary(self, input: Any, op: str, name: str | None = None) -> Any:
        """exp, log, sqrt, recip, abs, neg, sin, cos, tan, sinh, cosh, asin, acos, atan, asinh, acosh,
        atanh, ceil, floor, round, sign, erf."""
        return self.add_layer("unary", [input], {"op": op}, None, name)

    def add_reduce(self, input: Any, op: str, axes: Any, keep_dims: bool = False, name: str | None = None) -> Any:
        """sum, prod, max, min or avg over per-sample ``axes`` (negative axes count from the end)."""
        _ints(axes, "add_reduce: axes")
        return self.add_layer("reduce", [input], {"op": op, "axes": axes, "keep_dims": keep_dims}, None, name)

    def add_pooling(self, input: Any, pool: str, window: Any, stride: Any = None, padding: Any = 0,
                    exclude_padding: bool = True, name: str | None = None) -> Any:
        """max or avg pooling of a (C, H, W) input; ``stride`` defaults to the window."""
        _ints(window, "add_pooling: window", 1)
        _ints(stride, "add_pooling: stride", 1, allow_none=True)
        _ints(padding, "add_pooling: padding", 0)
        return self.add_layer("pooling", [input], {"pool": pool, "window": window, "stride": stride,
                                                   "padding": padding, "exclude_padding": exclude_padding},
                              None, name)

    def add_shuffle(self, input: Any, first_transpose: Sequence[int] | None = None,
                    reshape: Sequence[int] | None = None, second_transpose: Sequence[int] | None = None,
                    name: str | None = None) -> Any:
        """Transpose, reshape (0 copies a dim, -1 infers one), transpose; per-sample axes."""
        for what, v in (("first_transpose", first_transpose), ("reshape", reshape),
                        ("second_transpose", second_transpose)):
            if v is not None and not isinstance(v, (tuple, list)):
                raise NetworkDefinitionError(f"add_shuffle: {what} must be a tuple of ints or None, not {v!r}")
            _ints(v, f"add_shuffle: {what}", -1 if what == "reshape" else 0, allow_none=True)
        return self.add_layer("shuffle", [input], {"first_transpose": first_transpose, "reshape": reshape,
                                                   "second_transpose": second_transpose}, None, name)

    def add_concatenation(self, inputs: Sequence[Any], axis: int = 0, name: str | None = None) -> Any:
        """Joins tensors of equal per-sample shape except along ``axis``."""
        return self.add_layer("concatenation", _tensor_list(inputs, "add_concatenation"), {"axis": axis}, None, name)

    def add_gather(self, data: Any, indices: Any, axis: int = 0, name: str | None = None) -> Any:
        """Entries of ``data`` picked along ``axis`` by int32 ``indices``."""
        return self.add_layer("gather", [data, indices], {"axis": axis}, None, name)

    def add_topk(self, input: Any, op: str, k: int, axis: int = -1, name: str | None = None) -> Any:
        """The ``k`` largest (op='max') or smallest values along ``axis``; outputs values and int32 indices."""
        _ints(k, "add_topk: k", 1)
        return self.add_layer("topk", [input], {"op": op, "k": k, "axis": axis}, None, name)

    def add_softmax(self, input: Any, axis: int = 0, log: bool = False, name: str | None = None) -> Any:
        """Softmax along one per-sample axis (TensorRT's default: 0, the channel axis); ``log=True``:
        log-softmax (ONNX LogSoftmax), computed stably."""
        return self.add_layer("softmax", [input], {"axis": axis, "log": log}, None, name)

    def add_lrn(self, input: Any, window: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0,
                name: str | None = None) -> Any:
        """Local response normalisation across channels over an odd ``window``."""
        _ints(window, "add_lrn: window", 1)
        return self.add_layer("lrn", [input], {"window": window, "alpha": alpha, "beta": beta, "k": k}, None, name)

    def add_padding(self, input: Any, pre_padding: Any, post_padding: Any, mode: str = "constant",
                    value: float = 0.0, name: str | None = None) -> Any:
        """Padding before/after the last per-sample dims: an int or a pair pads the last two, a sequence
        of n ints the last n (ONNX Pad). ``mode``: constant (``value``; negative amounts crop), reflect,
        edge or wrap."""
        _ints(pre_padding, "add_padding: pre_padding")
        _ints(post_padding, "add_padding: post_padding")
        return self.add_layer("padding", [input], {"pre_padding": pre_padding, "post_padding": post_padding,
                                                   "mode": mode, "value": value}, None, name)

    def add_resize(self, input: Any, shape: Sequence[int] | None = None, scales: Sequence[float] | None = None,
                   mode: str = "nearest", coordinate_transformation: str = "half_pixel",
                   nearest_rounding: str = "round_prefer_floor", cubic_coeff: float = -0.75,
                   exclude_outside: bool = False, name: str | None = None) -> Any:
        """ONNX Resize over per-sample axes: exactly one of ``shape`` (the output's per-sample shape) or
        ``scales`` (one factor per axis; output ``floor(n * scale)``). ``mode`` nearest, linear or cubic;
        ``coordinate_transformation`` half_pixel, half_pixel_symmetric, pytorch_half_pixel,
        align_corners, asymmetric or tf_half_pixel_for_nn; ``nearest_rounding`` round_prefer_floor,
        round_prefer_ceil, floor or ceil; ``cubic_coeff`` and ``exclude_outside`` as in ONNX."""
        if shape is not None:
            _ints(shape, "add_resize: shape", 1)
        return self.add_layer("resize", [input], {"shape": shape, "scales": scales, "mode": mode,
                                                  "coordinate_transformation": coordinate_transformation,
                                                  "nearest_rounding": nearest_rounding, "cubic_coeff": cubic_coeff,
                                                  "exclude_outside": exclude_outside}, None, name)

    def add_slice(self, input: Any, starts: Sequence[int], ends: Sequence[int], axes: Sequence[int] | None = None,
                  steps: Sequence[int] | None = None, name: str | None = None) -> Any:
        """ONNX Slice over per-sample axes: negative starts/ends count from the end and are clamped
        (``2**63 - 1`` means the end); ``axes`` default 0..n-1, ``steps`` 1 (non-zero; negative walks back)."""
        return self.add_layer("slice", [input], {"starts": starts, "ends": ends, "axes": axes, "steps": steps},
                              None, name)

    def add_expand(self, input: Any, shape: Sequence[int], name: str | None = None) -> Any:
        """ONNX Expand: the input broadcast (both ways, as NumPy) to the per-sample ``shape``."""
        return self.add_layer("expand", [input], {"shape": shape}, None, name)

    def add_select(self, condition: Any, then_input: Any, else_input: Any, name: str | None = None) -> Any:
        """ONNX Where: ``then_input`` where ``condition`` (int32 or float) is non-zero, else ``else_input``;
        equal per-sample ranks, 1-sized dims broadcast."""
        return self.add_layer("select", [condition, then_input, else_input], {}, None, name)

    def add_constant(self, values: Any, name: str | None = None) -> Any:
        """A constant tensor (no batch dimension; broadcast to every sample)."""
        return self.add_layer("constant", [], {}, {"values": values}, name)

    def add_identity(self, input: Any, dtype: str | None = None, name: str | None = None) -> Any:
        return self.add_layer("identity", [input], {"dtype": dtype}, None, name)

    def add_plugin(self, plugin: str, inputs: Sequence[Any], params: dict | None = None,
                   name: str | None = None) -> Any:
        """A layer computed by a plugin registered with :func:`perfkit.register_plugin`."""
        return self.add_layer("plugin", _tensor_list(inputs, "add_plugin"), {"plugin": plugin, "params": params or {}},
                              None, name)
