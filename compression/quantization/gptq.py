"""GPTQ for one weight matrix W (out, in): quantize column by column, pushing each rounding error onto the
columns not yet quantized through the Cholesky factor of H⁻¹ (the same machinery as SparseGPT).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from compression.calibration.hessian import inverse_factor
from compression.quantization.primitives import QParams, choose_qparams, quant_range, round_to_grid

BLOCK_SIZE = 128


def gptq_quantize(w: Tensor, h: Tensor, bits: int, symmetric: bool = False, granularity: str = "per-channel",
                  group_size: int = 64, act_order: bool = False, percdamp: float = 0.01, fp16_scales: bool = False,
                  block_size: int = BLOCK_SIZE) -> tuple[Tensor, QParams, str | None]:
    """Returns (ŵ on the grid, the grid, a note if dampening had to be raised).

    Per tensor and per channel, the grid comes from the unquantized weights. Per group (consecutive input
    columns), each group's grid comes from the weights as updated when its first column is reached; with
    act-order the grids are fixed from the unquantized weights first ("static groups"), so the file layout does
    not depend on the processing order.
    """
    w = w.clone().float()
    h = h.clone().float()
    w[:, torch.diag(h) == 0] = 0
    columns = w.shape[1]
    size = group_size if granularity == "per-group" else columns

    def grid(x: Tensor, group: int | None) -> QParams:
        axis = None if granularity == "per-tensor" else 0
        return choose_qparams(x, bits, symmetric, axis if group is None else None, group_size=group,
                              fp16_scales=fp16_scales)

    static = grid(w, size if granularity == "per-group" else None) if act_order or size >= columns else None
    perm = column_order(h, act_order)
    w, h = w[:, perm], h[perm][:, perm]
    factor = inverse_factor(h, percdamp)
    quant_min, quant_max = quant_range(bits, symmetric)
    found = _quantize_columns(w, factor.u, size, perm, static, grid, (quant_min, quant_max), block_size)
    w_hat = w[:, torch.argsort(perm)]
    if static is None:  # per group, the grids found on the way: (rows, groups)
        scales, zeros = zip(*found)
        static = QParams(torch.stack(scales, 1), torch.stack(zeros, 1), quant_min, quant_max, None, size)
    return w_hat, static, factor.note


def _column_grid(static: QParams, column: int, size: int) -> tuple[Tensor, Tensor]:
    """(scale, zero) of every row for one original column under a fixed grid."""
    if static.group_size:
        return static.scale[:, column // size], static.zero_point[:, column // size].float()
    return static.scale, static.zero_point.float()  # (rows,) per channel, () per tensor


def _quantize_columns(w: Tensor, hinv: Tensor, size: int, perm: Tensor, static: QParams | None, grid,
                      limits: tuple[int, int], block_size: int) -> list[tuple[Tensor, Tensor]]:
    """Quantize w (out, in, already permuted) in place; returns the per-group (scale, zero) found on the way."""
    columns = w.shape[1]
    perm_list = perm.tolist()  # one transfer, not one per column
    found = []
    scale = zero = None
    for i1 in range(0, columns, block_size):
        i2 = min(i1 + block_size, columns)
        w1, hinv1 = w[:, i1:i2].clone(), hinv[i1:i2, i1:i2]
        err1 = torch.zeros_like(w1)
        for i in range(i2 - i1):
            column = perm_list[i1 + i]
            if static is not None:
                scale, zero = _column_grid(static, column, size)
            elif (i1 + i) % size == 0:  # a new group: its grid comes from the weights as updated so far
                tail = min(size, columns - i1 - i)
                block = torch.cat([w1[:, i:i + tail], w[:, i2:i2 + max(0, tail - (i2 - i1 - i))]], 1)
                qp = grid(block, None)
                scale, zero = qp.scale, qp.zero_point
                found.append((scale, zero))
                zero = zero.float()
            col = w1[:, i]
            q = round_to_grid(col, scale, zero, *limits)
            err = (col - q) / hinv1[i, i]
            w1[:, i:] -= err[:, None] * hinv1[i, i:][None, :]
            w1[:, i] = q
            err1[:, i] = err
        w[:, i1:i2] = w1
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    return found


def column_order(h: Tensor, act_order: bool) -> Tensor:
    """The order GPTQ rounds the columns in: by decreasing diag H (act-order), else left to right."""
    if act_order:
        return torch.argsort(torch.diag(h), descending=True)
    return torch.arange(h.shape[0], device=h.device)


@dataclass(frozen=True, eq=False)
class ErrorPush:
    """One weight row through GPTQ, every tensor (in,) in the original column order."""

    order: Tensor  # the columns in the order GPTQ rounded them
    original: Tensor  # the row before
    before_rounding: Tensor  # each weight when its turn came: the original plus the errors pushed onto it
    quantized: Tensor  # GPTQ's ŵ: before_rounding rounded onto the grid

    @property
    def pushed(self) -> Tensor:
        """What the rounding errors of the columns rounded before it added to each weight."""
        return self.before_rounding - self.original


def error_push(w: Tensor, w_hat: Tensor, h: Tensor, act_order: bool = False, percdamp: float = 0.01) -> ErrorPush:
    """Replay GPTQ's error push on one row `w` (in,) that gptq_quantize turned into `w_hat` (in,) with Hessian `h`.

    Column by column in GPTQ's order, e_j = (w_j − ŵ_j)/U_jj moves every later column k by −e_j·U_jk (U: the
    Cholesky factor of the damped H⁻¹, as gptq_quantize builds it). The push never mixes rows, so one row replays
    exactly what the whole matrix went through.
    """
    w = w.clone().float()
    h = h.float()
    w[torch.diag(h) == 0] = 0
    perm = column_order(h, act_order)
    u = inverse_factor(h[perm][:, perm], percdamp).u
    x, q = w[perm].clone(), w_hat.float()[perm]
    before = torch.empty_like(x)
    for i in range(x.numel()):  # one row: a vector step per column
        before[i] = x[i]
        x[i + 1:] -= (x[i] - q[i]) / u[i, i] * u[i, i + 1:]
    in_place = torch.empty_like(before)
    in_place[perm] = before
    return ErrorPush(perm, w, in_place, w_hat.float())
