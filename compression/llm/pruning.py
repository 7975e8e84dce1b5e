"""Pure pruning math for one linear layer W (out, in): magnitude, Wanda and SparseGPT, unstructured or N:M.

N:M keeps the N largest scores in every group of M consecutive inputs of each output row (2:4 keeps half).
"""

from __future__ import annotations

import torch
from torch import Tensor

from compression.core.errors import InputError
from compression.llm.hessian import inverse_factor

BLOCK_SIZE = 128  # SparseGPT's column block: masks are chosen and errors pushed one block at a time


def check_nm(n: int, m: int, columns: int) -> None:
    if not 0 < n < m:
        raise InputError(f"N:M needs 0 < N < M, got {n}:{m}")
    if columns % m:
        raise InputError(f"N:M with M={m} needs the input size {columns} to be a multiple of {m}")


def keep_lowest_pruned(scores: Tensor, sparsity: float) -> Tensor:
    """Keep mask (bool) pruning the round(sparsity·cols) lowest scores of each row."""
    k = int(round(scores.shape[1] * sparsity))
    keep = torch.ones_like(scores, dtype=torch.bool)
    if k > 0:
        keep.scatter_(1, scores.topk(k, dim=1, largest=False).indices, False)
    return keep


def keep_nm(scores: Tensor, n: int, m: int) -> Tensor:
    """Keep mask (bool) with exactly n kept in every group of m consecutive columns of each row."""
    check_nm(n, m, scores.shape[1])
    groups = scores.reshape(scores.shape[0], -1, m)
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(2, groups.topk(n, dim=2).indices, True)
    return keep.reshape(scores.shape)


def keep_matrix(scores: Tensor, sparsity: float) -> Tensor:
    """Keep mask pruning the lowest round(sparsity·numel) scores of the whole matrix."""
    return keep_lowest_pruned(scores.reshape(1, -1), sparsity).reshape(scores.shape)


def magnitude_prune(w: Tensor, sparsity: float, scope: str = "row", nm: tuple[int, int] | None = None) -> Tensor:
    """Zero the smallest |w| per output row, per matrix, or per N:M group."""
    scores = w.abs()
    if nm:
        keep = keep_nm(scores, *nm)
    elif scope == "matrix":
        keep = keep_matrix(scores, sparsity)
    else:
        keep = keep_lowest_pruned(scores, sparsity)
    return w * keep


def wanda_scores(w: Tensor, input_norm: Tensor) -> Tensor:
    """|W_ij|·‖X_j‖₂, with input_norm (in,) the L2 norm of each input channel over the calibration tokens."""
    return w.abs() * input_norm[None, :]


def wanda_prune(w: Tensor, input_norm: Tensor, sparsity: float, nm: tuple[int, int] | None = None) -> Tensor:
    """Wanda: prune the lowest |W_ij|·‖X_j‖ within each output row (or each N:M group); no weight update."""
    scores = wanda_scores(w, input_norm)
    keep = keep_nm(scores, *nm) if nm else keep_lowest_pruned(scores, sparsity)
    return w * keep


def sparsegpt_prune(w: Tensor, h: Tensor, sparsity: float, nm: tuple[int, int] | None = None,
                    percdamp: float = 0.01, block_size: int = BLOCK_SIZE) -> tuple[Tensor, str | None]:
    """SparseGPT: choose masks by w²/[H⁻¹]_jj² per 128-column block, push each pruned weight's error onward (OBS).

    Returns (pruned weight, a note if dampening had to be raised).
    """
    if nm:
        check_nm(*nm, w.shape[1])
    w = w.clone().float()
    factor = inverse_factor(h, percdamp)
    w[:, factor.dead] = 0
    hinv = factor.u
    columns = w.shape[1]
    for i1 in range(0, columns, block_size):
        i2 = min(i1 + block_size, columns)
        w1, hinv1 = w[:, i1:i2].clone(), hinv[i1:i2, i1:i2]
        d = torch.diag(hinv1)
        err1 = torch.zeros_like(w1)
        keep1 = None if nm else keep_lowest_pruned((w1 ** 2 / d[None, :] ** 2).reshape(1, -1), sparsity)
        keep1 = keep1.reshape(w1.shape) if keep1 is not None else torch.ones_like(w1, dtype=torch.bool)
        for i in range(i2 - i1):
            if nm and i % nm[1] == 0:  # choose this N:M group's mask from the weights as updated so far
                group = w1[:, i:i + nm[1]] ** 2 / d[None, i:i + nm[1]] ** 2
                keep1[:, i:i + nm[1]] = keep_nm(group, *nm)
            col = w1[:, i]
            q = col * keep1[:, i]
            err = (col - q) / d[i]
            w1[:, i:] -= err[:, None] * hinv1[i, i:][None, :]
            w1[:, i] = q
            err1[:, i] = err
        w[:, i1:i2] = w1
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    return w, factor.note
