"""A weight layer seen as a matrix: weights as (out, in) and inputs as (tokens, in), whatever the layer type.

Linear and transformers' GPT-2 `Conv1D` map directly (Conv1D stores its weight transposed, as (in, out)).
Conv1d/Conv2d are matrices over unfolded patches: weight (out, c·kh·kw) and one row per output position, the
same column order as `weight.reshape(out, -1)`, so y = W x holds patch by patch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from compression.core.errors import InputError

CONV_TYPES = (nn.Conv1d, nn.Conv2d)


def is_conv1d(module: nn.Module) -> bool:
    """transformers' GPT-2 Conv1D: y = x @ weight + bias with weight (in, out); matched by name, not imported."""
    return type(module).__name__ == "Conv1D"


def is_weight_layer(module: nn.Module) -> bool:
    """A layer the calibrated methods can treat as a matrix."""
    return isinstance(module, (nn.Linear, *CONV_TYPES)) or is_conv1d(module)


def get_weight(module: nn.Module) -> Tensor:
    """A float32 copy of the weight as (out, in); a convolution's kernel is flattened into its inputs."""
    w = module.weight.detach()
    if is_conv1d(module):
        w = w.t()
    return w.reshape(w.shape[0], -1).float().contiguous().clone()


@torch.no_grad()
def set_weight(module: nn.Module, weight: Tensor) -> None:
    """Write an (out, in) weight back in the module's own layout (only on a model the caller owns)."""
    if is_conv1d(module):
        module.weight.copy_(weight.t())
    else:
        module.weight.copy_(weight.reshape(module.weight.shape))


def matrix_inputs(module: nn.Module, x: Tensor) -> Tensor:
    """The (tokens, in) rows this layer multiplies by W: flattened tokens, or unfolded patches of a convolution."""
    if isinstance(module, CONV_TYPES):
        if module.groups != 1:
            raise InputError("grouped convolutions cannot be compressed with calibration data here")
        if isinstance(module, nn.Conv1d):  # as a Conv2d of height 1
            x = x.unsqueeze(2)
            kernel, dilation, padding, stride = ((1, *module.kernel_size), (1, *module.dilation),
                                                 (0, *_padding(module)), (1, *module.stride))
        else:
            kernel, dilation, padding, stride = module.kernel_size, module.dilation, _padding(module), module.stride
        patches = F.unfold(x, kernel, dilation=dilation, padding=padding, stride=stride)  # (B, c·kh·kw, L)
        return patches.transpose(1, 2).reshape(-1, patches.shape[1])
    return x.reshape(-1, x.shape[-1])


def _padding(module: nn.Module) -> tuple[int, ...]:
    if isinstance(module.padding, str) or module.padding_mode != "zeros":
        raise InputError(f"{type(module).__name__} with padding {module.padding!r} ({module.padding_mode}) cannot "
                         "be compressed with calibration data here")
    return tuple(module.padding)
