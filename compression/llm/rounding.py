"""Group-wise round-to-nearest: the grid every weight-quantization method here ends on.

Scales are rounded up to float16 values (what a packed file stores), so a packed file decodes bit-exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from compression.core.errors import InputError


@dataclass(frozen=True, eq=False)
class GroupGrid:
    """x̂ = (clamp(round(x / scale) + zero, 0, 2^bits − 1) − zero) · scale, one (scale, zero) per row and group."""

    scale: Tensor  # (out, groups) float32, each exactly a float16 value
    zero: Tensor  # (out, groups) float32 holding integers in [0, 2^bits − 1]
    bits: int
    group_size: int

    @property
    def maxq(self) -> int:
        return 2 ** self.bits - 1


def check_group_size(columns: int, group_size: int) -> int:
    """The effective group size (0 = one group per row); InputError if it does not divide the columns."""
    size = group_size or columns
    if size < 1 or columns % size:
        raise InputError(f"group size {group_size} must divide the layer's {columns} input columns")
    return size


def fp16_ceil(scale: Tensor) -> Tensor:
    """The smallest float16 value >= scale (positive scales), as float32."""
    half = scale.clamp(min=2.0 ** -24, max=65504.0).half()
    bumped = (half.view(torch.int16) + 1).view(torch.float16)  # next float16 up (positive numbers)
    return torch.where(half.float() < scale, bumped, half).float()


def grid_for(w: Tensor, bits: int, symmetric: bool = False) -> tuple[Tensor, Tensor]:
    """(scale, zero) per row of w (rows, cols): min-max range including 0, as GPTQ's quantizer."""
    maxq = 2 ** bits - 1
    xmin = w.min(dim=1).values.clamp(max=0)
    xmax = w.max(dim=1).values.clamp(min=0)
    if symmetric:
        xmax = torch.maximum(-xmin, xmax)
        xmin = -xmax
    empty = (xmin == 0) & (xmax == 0)
    xmin, xmax = torch.where(empty, -1.0, xmin), torch.where(empty, 1.0, xmax)
    scale = fp16_ceil((xmax - xmin) / maxq)
    zero = torch.full_like(scale, (maxq + 1) / 2) if symmetric else torch.round(-xmin / scale)
    return scale, zero.clamp(0, maxq)


def fake_quantize(w: Tensor, scale: Tensor, zero: Tensor, maxq: int) -> Tensor:
    """Round w onto the grid; scale and zero broadcast against w."""
    q = torch.clamp(torch.round(w / scale) + zero, 0, maxq)
    return (q - zero) * scale


def group_grid(w: Tensor, bits: int, group_size: int, symmetric: bool = False) -> GroupGrid:
    """One (scale, zero) per row and group of `group_size` consecutive input columns of w (out, in)."""
    size = check_group_size(w.shape[1], group_size)
    groups = w.reshape(w.shape[0], -1, size)  # (out, groups, size)
    scale, zero = grid_for(groups.reshape(-1, size), bits, symmetric)
    return GroupGrid(scale.view(w.shape[0], -1), zero.view(w.shape[0], -1), bits, size)


def apply_grid(w: Tensor, grid: GroupGrid) -> Tensor:
    groups = w.reshape(w.shape[0], -1, grid.group_size)
    out = fake_quantize(groups, grid.scale[..., None], grid.zero[..., None], grid.maxq)
    return out.reshape(w.shape)


def rtn(w: Tensor, bits: int, group_size: int = 0, symmetric: bool = False) -> tuple[Tensor, GroupGrid]:
    """Round-to-nearest per row (group_size 0) or per group of input columns; returns (ŵ, grid)."""
    w = w.float()
    grid = group_grid(w, bits, group_size, symmetric)
    return apply_grid(w, grid), grid


def codes(w_hat: Tensor, grid: GroupGrid) -> Tensor:
    """The integer codes of weights that lie on `grid` (what a packed file stores)."""
    groups = w_hat.reshape(w_hat.shape[0], -1, grid.group_size)
    q = torch.round(groups / grid.scale[..., None]) + grid.zero[..., None]
    return q.clamp(0, grid.maxq).to(torch.int32).reshape(w_hat.shape)
