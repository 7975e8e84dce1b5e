"""GPTQ for one linear layer W (out, in): quantize column by column, pushing each rounding error onto the
columns not yet quantized through the Cholesky factor of H⁻¹ (the same machinery as SparseGPT).
"""

from __future__ import annotations

import torch
from torch import Tensor

from compression.llm.hessian import inverse_factor
from compression.llm.rounding import GroupGrid, check_group_size, fake_quantize, group_grid

BLOCK_SIZE = 128


def gptq_quantize(w: Tensor, h: Tensor, bits: int, group_size: int = 0, act_order: bool = False,
                  percdamp: float = 0.01, symmetric: bool = False,
                  block_size: int = BLOCK_SIZE) -> tuple[Tensor, GroupGrid, str | None]:
    """Returns (ŵ on the grid, the grid, a note if dampening had to be raised).

    Groups are contiguous input columns; with act-order their grids are fixed from the unquantized weights
    first ("static groups"), so the file layout does not depend on the processing order.
    """
    size = check_group_size(w.shape[1], group_size)
    w = w.clone().float()
    h = h.clone().float()
    factor_dead = torch.diag(h) == 0
    w[:, factor_dead] = 0
    grid = group_grid(w, bits, size, symmetric) if act_order or size == w.shape[1] else None
    perm = torch.argsort(torch.diag(h), descending=True) if act_order else torch.arange(w.shape[1], device=w.device)
    w, h = w[:, perm], h[perm][:, perm]
    factor = inverse_factor(h, percdamp)
    scales, zeros = _quantize_columns(w, factor.u, bits, size, perm, grid, symmetric, block_size)
    inverse = torch.argsort(perm)
    w_hat = w[:, inverse]
    if grid is None:
        grid = GroupGrid(torch.stack(scales, 1), torch.stack(zeros, 1), bits, size)
    return w_hat, grid, factor.note


def _quantize_columns(w: Tensor, hinv: Tensor, bits: int, size: int, perm: Tensor, grid: GroupGrid | None,
                      symmetric: bool, block_size: int) -> tuple[list[Tensor], list[Tensor]]:
    """Quantize w (out, in, already permuted) in place; returns the per-group (scale, zero) found on the way."""
    maxq = 2 ** bits - 1
    columns = w.shape[1]
    perm_list = perm.tolist()  # one transfer, not one per column
    scales, zeros = [], []
    scale = zero = None
    for i1 in range(0, columns, block_size):
        i2 = min(i1 + block_size, columns)
        w1, hinv1 = w[:, i1:i2].clone(), hinv[i1:i2, i1:i2]
        err1 = torch.zeros_like(w1)
        for i in range(i2 - i1):
            column = perm_list[i1 + i]
            if grid is not None:
                scale, zero = grid.scale[:, column // size], grid.zero[:, column // size]
            elif (i1 + i) % size == 0:  # a new group: its grid comes from the weights as updated so far
                block = torch.cat([w1[:, i:i + size], w[:, i2:i2 + max(0, size - (i2 - i1 - i))]], 1)
                found = group_grid(block, bits, size, symmetric)
                scale, zero = found.scale[:, 0], found.zero[:, 0]
                scales.append(scale)
                zeros.append(zero)
            col = w1[:, i]
            q = fake_quantize(col, scale, zero, maxq)
            err = (col - q) / hinv1[i, i]
            w1[:, i:] -= err[:, None] * hinv1[i, i:][None, :]
            w1[:, i] = q
            err1[:, i] = err
        w[:, i1:i2] = w1
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    return scales, zeros
