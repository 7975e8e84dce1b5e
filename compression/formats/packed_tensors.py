"""What a packed file holds besides plain tensors: codes on a uniform grid, binary codes, sparse and N:M values.

Each kind checks its own facts when it is built (dtypes, shapes, code ranges, finite scales), so what a caller hands
to `packed.encode` and what `packed.decode` reads from an untrusted file pass through the same checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from compression.core.errors import InputError

MAX_BITS = 16
MAX_M = 64
INT32_MIN, INT32_MAX = -2 ** 31, 2 ** 31 - 1
FLOAT_DTYPES = (torch.float16, torch.float32)  # how scales and kept values may be stored


def scale_shape(shape: tuple[int, ...], axis: int | None, group_size: int | None) -> tuple[int, ...]:
    """Shape of the scale (and zero point) of a tensor of `shape`: per tensor, per channel or per group."""
    if group_size is not None:
        if axis is not None:
            raise InputError("a per-group layout takes no axis")
        if not shape:
            raise InputError("a per-group layout needs a tensor of at least one dimension")
        cols = math.prod(shape[1:])
        # A group wider than the row would only pad the expanded scales (see AffineCodes._expand).
        if isinstance(group_size, bool) or not isinstance(group_size, int) or not 1 <= group_size <= max(cols, 1):
            raise InputError(f"group_size must be an integer in [1, {max(cols, 1)}], got {group_size!r}")
        return (shape[0], -(-cols // group_size))
    if axis is not None:
        if isinstance(axis, bool) or not isinstance(axis, int) or not 0 <= axis < len(shape):
            raise InputError(f"axis {axis!r} is not a dimension of shape {list(shape)}")
        return (shape[axis],)
    return ()


def index_bits(m: int) -> int:
    """Bits of a position inside a group of m: ceil(log2 m), at least 1."""
    return max(1, (m - 1).bit_length())


@dataclass(frozen=True, eq=False)
class AffineCodes:
    """Integer codes on a uniform grid, x̂ = (q − zero_point) · scale, per tensor, per channel or per group."""

    codes: Tensor  # the logical shape, values in [quant_min, quant_max]
    bits: int
    quant_min: int
    quant_max: int
    scale: Tensor  # () per tensor, (shape[axis],) per channel, (rows, ceil(cols / group_size)) per group
    zero_point: Tensor  # integers in [quant_min, quant_max], the scale's shape
    axis: int | None = None
    group_size: int | None = None

    def __post_init__(self):
        _check_ints(self.codes, "codes")
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or not 1 <= self.bits <= MAX_BITS:
            raise InputError(f"bits must be an integer from 1 to {MAX_BITS}, got {self.bits!r}")
        low, high = self.quant_min, self.quant_max
        if (any(isinstance(v, bool) or not isinstance(v, int) for v in (low, high))
                or not INT32_MIN <= low <= high <= INT32_MAX or high - low >= 2 ** self.bits):
            raise InputError(f"[quant_min, quant_max] = [{low!r}, {high!r}] is not an int32 range of {self.bits} bits")
        layout = scale_shape(tuple(self.codes.shape), self.axis, self.group_size)
        _check_scale(self.scale, layout)
        _check_ints(self.zero_point, "zero_point", layout)
        _check_range(self.codes, low, high, "codes")
        _check_range(self.zero_point, low, high, "zero points")

    def dequantize(self) -> Tensor:
        """The float32 tensor the codes stand for."""
        q = self.codes.to(torch.int64) - self._expand(self.zero_point.to(torch.int64))  # exact before scaling
        return q.to(torch.float32) * self._expand(self.scale.to(torch.float32))

    def _expand(self, t: Tensor) -> Tensor:
        """The scale or zero point broadcastable against the codes."""
        shape = self.codes.shape
        if self.group_size is not None:  # (rows, groups) -> (rows, cols): the last group may be shorter
            cols = math.prod(shape[1:])
            return t.repeat_interleave(self.group_size, dim=1)[:, :cols].reshape(shape)
        if self.axis is not None:
            return t.reshape([-1 if d == self.axis else 1 for d in range(len(shape))])
        return t


@dataclass(frozen=True, eq=False)
class BinaryCodes:
    """Codes in {0, 1} and one scale per tensor or channel: x̂ = scale where the code is 1, else −scale."""

    codes: Tensor
    scale: Tensor  # () or (shape[axis],)
    axis: int | None = None

    def __post_init__(self):
        _check_ints(self.codes, "codes")
        _check_scale(self.scale, scale_shape(tuple(self.codes.shape), self.axis, None))
        _check_range(self.codes, 0, 1, "binary codes")

    def dequantize(self) -> Tensor:
        """The float32 tensor the codes stand for."""
        scale = self.scale.to(torch.float32)
        if self.axis is not None:
            scale = scale.reshape([-1 if d == self.axis else 1 for d in range(self.codes.dim())])
        return torch.where(self.codes.bool(), scale, -scale)


@dataclass(frozen=True, eq=False)
class SparseValues:
    """The kept values of a tensor, in row-major order of a keep mask; zeros elsewhere."""

    shape: tuple[int, ...]
    mask: Tensor  # bool, `shape`
    values: Tensor  # (mask.sum(),) float16 or float32

    def __post_init__(self):
        _check_shape(self.shape)
        if self.mask.dtype != torch.bool or tuple(self.mask.shape) != tuple(self.shape):
            raise InputError(f"the mask must be a bool tensor of shape {list(self.shape)}")
        _check_values(self.values, int(self.mask.sum()))

    @classmethod
    def from_dense(cls, w: Tensor, dtype: torch.dtype = torch.float16) -> SparseValues:
        """The non-zero entries of w, kept as `dtype`."""
        mask = w != 0
        return cls(tuple(w.shape), mask, w[mask].to(dtype))

    def dense(self) -> Tensor:
        """The float32 tensor, zeros where the mask is False."""
        out = torch.zeros(self.shape, dtype=torch.float32)
        out[self.mask] = self.values.to(torch.float32)
        return out


@dataclass(frozen=True, eq=False)
class NMValues:
    """A (rows, cols) tensor keeping exactly n values in every group of m consecutive columns of a row."""

    shape: tuple[int, int]
    n: int
    m: int
    values: Tensor  # (rows·cols·n/m,) float16 or float32, row-major group order
    index: Tensor  # same length: each value's position inside its group, increasing within a group

    def __post_init__(self):
        _check_shape(self.shape)
        if len(self.shape) != 2:
            raise InputError(f"an N:M tensor must be 2-D, got shape {list(self.shape)}")
        m, n = self.m, self.n
        if any(isinstance(v, bool) or not isinstance(v, int) for v in (n, m)) or not 1 <= n <= m <= MAX_M:
            raise InputError(f"N:M needs 1 <= n <= m <= {MAX_M}, got {n!r}:{m!r}")
        if self.shape[1] % m:
            raise InputError(f"{self.shape[1]} columns are not a whole number of groups of {m}")
        kept = self.shape[0] * self.shape[1] // m * n
        _check_values(self.values, kept)
        _check_ints(self.index, "index", (kept,))
        _check_range(self.index, 0, m - 1, "positions")
        positions = self.index.reshape(-1, n)
        if not bool((positions[:, 1:] > positions[:, :-1]).all()):
            raise InputError("positions must increase within each group")

    @classmethod
    def from_dense(cls, w: Tensor, n: int, m: int, dtype: torch.dtype = torch.float16) -> NMValues:
        """The n largest |w| of every group of m columns of a 2-D w (ties keep the lower position)."""
        if w.dim() != 2 or w.shape[1] % m:
            raise InputError(f"N:M needs a 2-D tensor whose columns divide into groups of {m}, got {list(w.shape)}")
        groups = w.reshape(w.shape[0], w.shape[1] // m, m)  # (rows, cols/m, m)
        # A stable sort keeps equal magnitudes in position order, so ties keep the lower position.
        keep = torch.sort(groups.abs(), dim=-1, descending=True, stable=True).indices[..., :n]
        index = keep.sort(dim=-1).values
        values = groups.gather(-1, index).reshape(-1).to(dtype)
        return cls(tuple(w.shape), n, m, values, index.reshape(-1).to(torch.int32))

    def dense(self) -> Tensor:
        """The float32 (rows, cols) tensor, zeros at the positions not kept."""
        rows, cols = self.shape
        out = torch.zeros(rows, cols // self.m, self.m, dtype=torch.float32)
        kept = (rows, cols // self.m, self.n)
        out.scatter_(2, self.index.to(torch.int64).reshape(kept), self.values.to(torch.float32).reshape(kept))
        return out.reshape(rows, cols)


def _check_shape(shape: object) -> None:
    if not isinstance(shape, tuple) or any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in shape):
        raise InputError(f"shape must be a tuple of non-negative integers, got {shape!r}")


def _check_ints(t: object, what: str, shape: tuple[int, ...] | None = None) -> None:
    if not isinstance(t, Tensor) or t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise InputError(f"{what} must be an integer tensor")
    if shape is not None and tuple(t.shape) != shape:
        raise InputError(f"{what} must have shape {list(shape)}, got {list(t.shape)}")


def _check_range(t: Tensor, low: int, high: int, what: str) -> None:
    if t.numel() and (int(t.min()) < low or int(t.max()) > high):
        raise InputError(f"{what} must lie in [{low}, {high}], got [{int(t.min())}, {int(t.max())}]")


def _check_scale(scale: object, shape: tuple[int, ...]) -> None:
    if not isinstance(scale, Tensor) or scale.dtype not in FLOAT_DTYPES or tuple(scale.shape) != shape:
        raise InputError(f"the scale must be a float16 or float32 tensor of shape {list(shape)}")
    if not bool(torch.isfinite(scale).all()):
        raise InputError("the scale holds NaN or Inf values")


def _check_values(values: object, count: int) -> None:
    if not isinstance(values, Tensor) or values.dtype not in FLOAT_DTYPES or tuple(values.shape) != (count,):
        raise InputError(f"the kept values must be a float16 or float32 tensor of shape [{count}]")
    if not bool(torch.isfinite(values).all()):
        raise InputError("the kept values hold NaN or Inf values")
