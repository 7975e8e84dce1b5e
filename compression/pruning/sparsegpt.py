"""SparseGPT for one weight matrix W (out, in): choose masks block by block and update the surviving weights to
absorb each pruned weight's error (the Optimal Brain Surgeon step), through the Cholesky factor of H⁻¹."""

from __future__ import annotations

import torch
from torch import Tensor

from compression.calibration.hessian import inverse_factor
from compression.pruning.masks import nm_keep, row_keep

BLOCK_SIZE = 128  # masks are chosen and errors pushed one column block at a time


def sparsegpt_prune(w: Tensor, h: Tensor, amount: float, nm: tuple[int, int] | None = None,
                    percdamp: float = 0.01, block_size: int = BLOCK_SIZE) -> tuple[Tensor, str | None]:
    """Returns (pruned and updated weight, a note if dampening had to be raised).

    Unstructured: each block prunes the lowest w²/[H⁻¹]_jj² over all its rows and columns. N:M: each group of M
    columns keeps the N best of the weights as updated so far (the block is a multiple of M, so no group is cut).
    """
    w = w.clone().float()
    factor = inverse_factor(h, percdamp)
    w[:, factor.dead] = 0
    hinv = factor.u
    columns = w.shape[1]
    if nm:
        block_size = max(nm[1], block_size - block_size % nm[1])
    for i1 in range(0, columns, block_size):
        i2 = min(i1 + block_size, columns)
        w1, hinv1 = w[:, i1:i2].clone(), hinv[i1:i2, i1:i2]
        d = torch.diag(hinv1)
        err1 = torch.zeros_like(w1)
        if nm:
            keep1 = torch.ones_like(w1, dtype=torch.bool)
        else:
            keep1 = row_keep((w1 ** 2 / d[None, :] ** 2).reshape(1, -1), amount).reshape(w1.shape)
        for i in range(i2 - i1):
            if nm and i % nm[1] == 0:  # this N:M group's mask from the weights as updated so far
                group = w1[:, i:i + nm[1]] ** 2 / d[None, i:i + nm[1]] ** 2
                keep1[:, i:i + nm[1]] = nm_keep(group, *nm)
            col = w1[:, i]
            q = col * keep1[:, i]
            err = (col - q) / d[i]
            w1[:, i:] -= err[:, None] * hinv1[i, i:][None, :]
            w1[:, i] = q
            err1[:, i] = err
        w[:, i1:i2] = w1
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    return w, factor.note


def survivor_updates(w: Tensor, pruned: Tensor) -> Tensor:
    """What SparseGPT's updates added to each weight it kept (`pruned` − `w` there) and 0 where it pruned: the
    compensation for the pruned weights' error, which magnitude and Wanda never make."""
    return torch.where(pruned != 0, pruned.float() - w.float(), torch.zeros((), dtype=torch.float32))
