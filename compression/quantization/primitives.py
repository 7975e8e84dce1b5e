"""Pure quantization math: grids (1 to 16 bits; per tensor, channel or group), the one rounding function, codes.

A grid is a QParams: x̂ = (clamp(round(x · (1/scale)) + zero_point, quant_min, quant_max) − zero_point) · scale.
Symmetric grids use signed codes with zero point 0, asymmetric ones unsigned codes, as in PyTorch. Per group,
a tensor is seen as (rows = shape[0], columns = the rest) and each row is cut into groups of `group_size`
consecutive columns (the last may be shorter), one scale and zero point per (row, group).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from dataclasses import dataclass

from compression.core.errors import InputError
from compression.quantization.config import check_bits

# Same floor as PyTorch's observers: a constant or all-zero tensor gets this scale instead of Δ = 0.
EPS = torch.finfo(torch.float32).eps
_MSE_CANDIDATES = torch.linspace(1.0, 0.2, 33)  # fractions of the min-max range tried by the MSE search


@dataclass(frozen=True, eq=False)
class QParams:
    """Scale and zero point of a grid: () per tensor, (C,) per channel along `axis`, (rows, groups) per group."""

    scale: Tensor  # float32
    zero_point: Tensor  # int32, same shape as scale
    quant_min: int
    quant_max: int
    axis: int | None = None  # the channel axis for per-channel parameters
    group_size: int | None = None  # per group: columns per group of each row


def quant_range(bits: int, symmetric: bool) -> tuple[int, int]:
    """Integer range of `bits`-bit codes: signed for symmetric, unsigned for asymmetric (as in PyTorch)."""
    check_bits(bits)
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if symmetric else (0, 2 ** bits - 1)


def round_to_grid(x: Tensor, scale: Tensor, zero: Tensor, quant_min: int, quant_max: int) -> Tensor:
    """The one rounding function; multiplies by 1/scale exactly like torch.fake_quantize_* (scale, zero broadcast)."""
    q = torch.clamp(torch.round(x * (1.0 / scale)) + zero, quant_min, quant_max)
    return (q - zero) * scale


def group_view(x: Tensor, group_size: int) -> Tensor:
    """x as (rows, groups, group_size), the last group of each row padded with zeros (grids always hold 0)."""
    rows = x.reshape(x.shape[0], -1) if x.ndim else x.reshape(1, 1)
    pad = (-rows.shape[1]) % group_size
    return F.pad(rows, (0, pad)).view(rows.shape[0], -1, group_size)


def _from_group_view(v: Tensor, like: Tensor) -> Tensor:
    columns = like[0].numel() if like.ndim else 1
    return v.reshape(v.shape[0], -1)[:, :columns].reshape(like.shape)


def _apply(x: Tensor, qp: QParams, fn):
    """fn(x, scale, zero) with scale and zero broadcast against x (per group: on the group view)."""
    zero = qp.zero_point.float()
    if qp.group_size:
        out = fn(group_view(x, qp.group_size), qp.scale[..., None], zero[..., None])
        return _from_group_view(out, x)
    return fn(x, _broadcast(qp.scale, x, qp.axis), _broadcast(zero, x, qp.axis))


def fake_quantize(x: Tensor, qparams: QParams) -> Tensor:
    """Round to the grid and back in float32."""
    return _apply(x, qparams, lambda v, s, z: round_to_grid(v, s, z, qparams.quant_min, qparams.quant_max))


def quantize_codes(x: Tensor, qparams: QParams) -> Tensor:
    """The integer codes that fake_quantize rounds `x` to, in the smallest signed dtype that holds the grid."""
    def codes(v, s, z):
        return torch.clamp(torch.round(v * (1.0 / s)) + z, qparams.quant_min, qparams.quant_max)
    return _apply(x, qparams, codes).to(code_dtype(qparams.quant_min, qparams.quant_max))


def code_dtype(quant_min: int, quant_max: int) -> torch.dtype:
    """int8, int16 or int32: a model's codes are kept until it is packed, and int32 codes of 4-bit weights weighed as
    much as the float32 weights themselves (0.42 GB for SmolLM2)."""
    for dtype in (torch.int8, torch.int16):
        info = torch.iinfo(dtype)
        if info.min <= quant_min and quant_max <= info.max:
            return dtype
    return torch.int32


def clipped_mask(x: Tensor, qparams: QParams) -> Tensor:
    """True where `x` lies outside the grid's range, so clamping (not rounding) decides its value."""
    def outside(v, s, z):
        q = torch.round(v * (1.0 / s)) + z
        return ((q < qparams.quant_min) | (q > qparams.quant_max)).float()
    return _apply(x, qparams, outside).bool()


def dequantize_codes(codes: Tensor, qparams: QParams) -> Tensor:
    """(codes − zero_point) · scale, in float32."""
    return _apply(codes.float(), qparams, lambda q, s, z: (q - z) * s)


def choose_qparams(x: Tensor, bits: int, symmetric: bool = True, axis: int | None = None,
                   range_method: str = "min-max", percentile: float = 99.9, group_size: int | None = None,
                   fp16_scales: bool = False) -> QParams:
    """A grid covering `x` (per channel along `axis`, or per group of `group_size` columns of each row)."""
    check_finite(x)
    if group_size:
        view = group_view(x, group_size)
        flat = choose_qparams(view.reshape(-1, group_size), bits, symmetric, 0, range_method, percentile,
                              fp16_scales=fp16_scales)
        shape = view.shape[:2]
        return QParams(flat.scale.view(shape), flat.zero_point.view(shape), flat.quant_min, flat.quant_max, None,
                       group_size)
    quant_min, quant_max = quant_range(bits, symmetric)
    if range_method == "mse":
        return _mse_qparams(x, bits, symmetric, axis, fp16_scales)
    lo, hi = _value_range(x, axis, range_method, percentile, symmetric)
    return qparams_from_range(lo, hi, quant_min, quant_max, symmetric, axis, fp16_scales)


def qparams_from_range(lo: Tensor, hi: Tensor, quant_min: int, quant_max: int, symmetric: bool,
                       axis: int | None = None, fp16_scales: bool = False) -> QParams:
    """The grid from [lo, hi] (stretched to hold 0 exactly: padding and pruned weights stay exact)."""
    lo, hi = lo.clamp_max(0.0), hi.clamp_min(0.0)
    if symmetric:
        # Δ = max|x| / (2^(b-1) - 1): the largest value lands on the grid, the extra negative code stays unused
        scale = (torch.maximum(-lo, hi) / max(quant_max, 1)).clamp_min(EPS)
    else:
        scale = ((hi - lo) / (quant_max - quant_min)).clamp_min(EPS)
    if fp16_scales:
        scale = fp16_ceil(scale)
    zero = (torch.zeros_like(scale, dtype=torch.int32) if symmetric else
            torch.clamp(quant_min - torch.round(lo / scale), quant_min, quant_max).to(torch.int32))
    return QParams(scale.float(), zero, quant_min, quant_max, axis)


def fp16_ceil(scale: Tensor) -> Tensor:
    """The smallest float16 value >= scale (positive scales), as float32: a file storing float16 loses nothing."""
    half = scale.clamp(min=2.0 ** -24, max=65504.0).half()
    bumped = (half.view(torch.int16) + 1).view(torch.float16)  # next float16 up (positive numbers)
    return torch.where(half.float() < scale, bumped, half).float()


def fake_quantize_dynamic(x: Tensor, bits: int, granularity: str) -> Tensor:
    """Symmetric rounding of activations (..., d) with a scale from the values themselves: per token or tensor."""
    quant_min, quant_max = quant_range(bits, True)
    amax = x.abs().amax(dim=-1, keepdim=True) if granularity == "per-token" else x.abs().amax()
    scale = (amax / quant_max).clamp(min=1e-8)
    return round_to_grid(x, scale, torch.zeros((), dtype=x.dtype, device=x.device), quant_min, quant_max)


def check_finite(x: Tensor, name: str = "tensor") -> None:
    # a NaN reaches both extremes and an infinity one of them: two reductions, ten times faster than isfinite(x).all()
    # with its boolean copy (it ran twice per weight on every live RTN move)
    if x.numel() and not torch.isfinite(torch.stack(x.aminmax())).all():
        raise InputError(f"{name} contains NaN or Inf values; it cannot be quantized")


def _value_range(x: Tensor, axis: int | None, method: str, percentile: float,
                 symmetric: bool) -> tuple[Tensor, Tensor]:
    if method == "min-max" or percentile >= 100.0:
        return reduce(x, axis, "amin"), reduce(x, axis, "amax")
    if symmetric:
        amax = _quantile(x.abs(), axis, percentile / 100.0)
        return -amax, amax
    return _quantile(x, axis, 1.0 - percentile / 100.0), _quantile(x, axis, percentile / 100.0)


def _mse_qparams(x: Tensor, bits: int, symmetric: bool, axis: int | None, fp16_scales: bool) -> QParams:
    """Shrink the min-max range by each candidate fraction; keep, per channel, the one with least squared error."""
    quant_min, quant_max = quant_range(bits, symmetric)
    lo, hi = reduce(x, axis, "amin"), reduce(x, axis, "amax")
    best, best_err = None, None
    for fraction in _MSE_CANDIDATES.tolist():
        qp = qparams_from_range(lo * fraction, hi * fraction, quant_min, quant_max, symmetric, axis, fp16_scales)
        err = reduce((fake_quantize(x, qp) - x).pow(2), axis, "sum")
        if best is None:
            best, best_err = qp, err
            continue
        better = err < best_err
        best = QParams(torch.where(better, qp.scale, best.scale), torch.where(better, qp.zero_point, best.zero_point),
                       quant_min, quant_max, axis)
        best_err = torch.minimum(err, best_err)
    return best


def reduce(x: Tensor, axis: int | None, how: str) -> Tensor:
    """Reduce over everything (axis None) or over every dim but `axis`, giving shape () or (C,)."""
    flat = x.reshape(-1) if axis is None else x.movedim(axis, 0).reshape(x.shape[axis], -1)
    dim = 0 if axis is None else 1
    if how in ("amin", "amax"):
        return getattr(flat, how)(dim) if flat.numel() else torch.zeros(flat.shape[:dim])
    return getattr(flat, how)(dim)


def _quantile(x: Tensor, axis: int | None, q: float) -> Tensor:
    # kthvalue instead of torch.quantile: no 16M-element limit; nearest-rank percentile
    flat = x.reshape(1, -1) if axis is None else x.movedim(axis, 0).reshape(x.shape[axis], -1)
    k = min(flat.shape[1], max(1, math.ceil(q * flat.shape[1])))
    out = flat.float().kthvalue(k, dim=1).values
    return out[0] if axis is None else out


def _broadcast(values: Tensor, like: Tensor, axis: int | None) -> Tensor:
    """Shape (C,) per-channel values so they broadcast along `axis` of `like`."""
    if axis is None or values.ndim == 0:
        return values
    shape = [1] * like.ndim
    shape[axis] = -1
    return values.reshape(shape)
