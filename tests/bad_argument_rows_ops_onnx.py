"""Rows of tests/bad_argument_table.py for the layers the ONNX importer needs (issue 10, helper A2), and
bad values for the parameters those layers added to existing adders (add_padding, add_softmax,
add_activation): their rows stay in the table, this file adds the new parameters' families to them."""
from __future__ import annotations

import numpy as np

from bad_argument_table import CASES, case, on_fresh_network
from bad_argument_values import ARRAY, AXIS, CHOICE, COUNT, COUNT0, OPT_NAME, SHAPE, TENSOR, family

NAN, INF = float("nan"), float("inf")
INTS = family(none=None, text="0", number_not_list=3, float=[0.5], bool=[True], nested=[[1]])
OPT_INTS = {k: v for k, v in INTS.items() if k != "none"}
WEIGHTS = {k: v for k, v in ARRAY.items() if k != "wrong_shape"}


def extend(name: str, bad: dict) -> None:
    """Adds the families of parameters an existing adder gained to its row in the table."""
    CASES[name].bad.update(bad)


case("Network.add_slice", on_fresh_network("add_slice"),
     {"input": "img", "starts": [0], "ends": [1], "axes": [0], "steps": None, "name": None},
     {"input": TENSOR, "starts": {**INTS, "empty": [], "selects_nothing": [5]},
      "ends": {**INTS, "one_too_many": [1, 2]},
      "axes": {**OPT_INTS, "out_of_range": [7], "one_too_many": [0, 1]},
      "steps": {**OPT_INTS, "zero": [0], "one_too_many": [1, 1]}, "name": OPT_NAME})
case("Network.add_expand", on_fresh_network("add_expand"), {"input": "m", "shape": (2, 3, 4), "name": None},
     {"input": TENSOR, "shape": {**SHAPE, "incompatible": (3, 5), "fewer_dims": (4,)}, "name": OPT_NAME})
case("Network.add_select", on_fresh_network("add_select"),
     {"condition": "idx", "then_input": "idx", "else_input": "idx", "name": None},
     {"condition": {**TENSOR, "mismatched": "img"}, "then_input": {**TENSOR, "mismatched": "img"},
      "else_input": {**TENSOR, "mismatched": "m", "other_kind": "x"}, "name": OPT_NAME})

case("Network.add_parametric_relu", on_fresh_network("add_parametric_relu"),
     {"input": "img", "slope": "img", "name": None},
     {"input": {**TENSOR, "int32": "idx"}, "slope": {**TENSOR, "enlarges": "m", "int32": "idx"}, "name": OPT_NAME})

case("Network.add_normalization", on_fresh_network("add_normalization"),
     {"input": "img", "scale": np.ones((2, 1, 1)), "bias": None, "axes": [1, 2], "epsilon": 1e-5, "num_groups": 1,
      "statistics": False, "name": None},
     {"input": {**TENSOR, "int32": "idx"}, "scale": {**WEIGHTS, "too_big": np.ones((3, 6, 6))},
      "bias": {k: v for k, v in WEIGHTS.items() if k != "none"},
      "axes": {**AXIS, "repeated": (1, 1), "empty": ()},
      "epsilon": family(zero=0.0, negative=-1e-5, nan=NAN, inf=INF, none=None, text="1e-5"),
      "num_groups": {**COUNT, "not_dividing": 3}, "statistics": family(none=None, text="yes", number=1),
      "name": OPT_NAME},
     accept=("scale:none",))

FACTORS = family(none_with_shape=None, text="2", number_not_list=2.0, empty=[], zero=[1.0, 0.0, 1.0],
                 negative=[1.0, -2.0, 1.0], nan=[1.0, NAN, 1.0], too_small=[1.0, 0.01, 1.0], one_too_few=[1.0, 2.0])
case("Network.add_resize", on_fresh_network("add_resize"),
     {"input": "img", "shape": None, "scales": [1.0, 2.0, 1.5], "mode": "linear",
      "coordinate_transformation": "half_pixel", "nearest_rounding": "round_prefer_floor", "cubic_coeff": -0.75,
      "exclude_outside": False, "name": None},
     {"input": {**TENSOR, "int32_linear": "idx"},
      "shape": {**{k: v for k, v in SHAPE.items() if k != "none"}, "with_scales": (2, 12, 9)},
      "scales": FACTORS, "mode": {**CHOICE, "area": "area"},
      "coordinate_transformation": {**CHOICE, "crop": "tf_crop_and_resize"}, "nearest_rounding": CHOICE,
      "cubic_coeff": family(nan=NAN, inf=INF, text="-0.5", none=None),
      "exclude_outside": family(none=None, text="yes", number=1), "name": OPT_NAME})

case("Network.add_deconvolution", on_fresh_network("add_deconvolution"),
     {"input": "img", "num_output_maps": 3, "kernel_size": 3, "kernel": np.ones((2, 3, 3, 3)), "bias": None,
      "stride": 2, "padding": 1, "post_padding": None, "dilation": 1, "groups": 1, "output_padding": 1, "name": None},
     {"input": {**TENSOR, "flat": "x", "int32": "idx"}, "num_output_maps": COUNT,
      "kernel_size": {**COUNT, "not_the_kernels": 2}, "kernel": ARRAY,
      "bias": {k: v for k, v in ARRAY.items() if k != "none"}, "stride": COUNT,
      "padding": {**COUNT0, "crops_all": 20}, "post_padding": {k: v for k, v in COUNT0.items() if k != "none"},
      "dilation": COUNT, "groups": {**COUNT, "not_dividing": 2}, "output_padding": {**COUNT0, "not_below_stride": 2},
      "name": OPT_NAME},
     accept=("padding:negative", "post_padding:negative"))     # negative pads extend the output (ONNX output_shape)

extend("Network.add_padding", {
    "mode": {**CHOICE, "numpy_only": "symmetric"},
    "value": family(nan=NAN, inf=INF, none=None, text="0", list=[1.0], array=np.ones(2))})
extend("Network.add_softmax", {"log": family(none=None, text="yes", number=1)})
