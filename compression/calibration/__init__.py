"""Calibration: inputs captured block by block for any model given its block map, and the Hessians built on them.

>>> for step in walk(copy, WeightLayers(), images, process): ...      # each Linear/Conv layer is a block
>>> H = hessian(x)                                                   # x: (tokens, in) from block_inputs
"""

from compression.calibration.capture import (Block, BlockMap, BlockProcess, BlockReport, BlockStep, WeightLayers,
                                             input_norms, input_ranges, layer_inputs, walk)
from compression.calibration.data import calibration_images
from compression.calibration.hessian import (ERROR_TOKENS, InputStats, InverseFactor, gram, hessian,
                                             inverse_factor, relative_error, row_output_errors, subsample,
                                             subsample_size)
from compression.calibration.layers import get_weight, is_conv1d, is_weight_layer, matrix_inputs, set_weight

__all__ = [
    "ERROR_TOKENS", "Block", "BlockMap", "BlockProcess", "BlockReport", "BlockStep", "InputStats", "InverseFactor",
    "WeightLayers",
    "calibration_images", "get_weight", "input_norms", "input_ranges", "gram", "hessian", "inverse_factor",
    "is_conv1d", "is_weight_layer", "layer_inputs", "matrix_inputs", "relative_error", "row_output_errors",
    "set_weight", "subsample", "subsample_size", "walk",
]
