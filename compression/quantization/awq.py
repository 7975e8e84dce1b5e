"""AWQ for the linears fed by one op: search a per-input-channel scale s = mean|x|^α over a grid of α, fold it
into that op, then search a clipping ratio per group. Pure functions of inputs and weights (out, in).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

CLIP_MAX_SHRINK = 0.5  # clipping ratios tried: 1, 1 − 1/grid, ... down to 1 − max_shrink

# fake-quantize an (out, in) weight onto the method's grid
Rounder = Callable[[Tensor], Tensor]


def candidate_scales(x_mean: Tensor, alpha: float) -> Tensor:
    """s = mean|x|^α, normalized so that max(s)·min(s) = 1 (as the reference does)."""
    s = x_mean.pow(alpha).clamp(min=1e-4)
    return s / (s.max() * s.min()).sqrt()


def search_scale(x: Tensor, weights: list[Tensor], rounder: Rounder, grid: int = 20) -> tuple[Tensor, float]:
    """The s (in,) and α whose Q(W·diag(s))·diag(s)⁻¹ best reproduces X Wᵀ for all `weights` together."""
    x = x.float()
    x_mean = x.abs().mean(0)
    # ‖XΔᵀ‖² over every token; with more tokens than inputs it is cheaper as Σ_rows Δ (XᵀX) Δᵀ
    gram_x = x.t() @ x if x.shape[0] > x.shape[1] else None
    best = (float("inf"), torch.ones_like(x_mean), 0.0)
    for step in range(grid):
        alpha = step / grid
        s = candidate_scales(x_mean, alpha)
        loss = 0.0
        for w in weights:
            delta = w.float() - rounder(w.float() * s) / s
            error = ((delta @ gram_x) * delta).sum() if gram_x is not None else (x @ delta.t()).pow(2).sum()
            loss += error.item()
        if loss < best[0]:
            best = (loss, s, alpha)
    return best[1], best[2]


def search_clip(w: Tensor, gram_x: Tensor, rounder: Rounder, group_size: int, grid: int = 20) -> Tensor:
    """w clamped to ±r·max|w_group| with the ratio r per (row, group) that minimizes that group's output error.

    The error of one group's partial output over the tokens is Δ_g G_g Δ_gᵀ, with G_g its block of XᵀX; a row's
    last group may be shorter (it is padded with zero weights, which neither clip nor err).
    """
    w = w.float()
    rows, columns = w.shape
    size = min(group_size, columns)
    pad = (-columns) % size
    groups = (columns + pad) // size
    padded_gram = F.pad(gram_x.float(), (0, pad, 0, pad))
    blocks = torch.stack([padded_gram[g * size:(g + 1) * size, g * size:(g + 1) * size] for g in range(groups)])
    wg = F.pad(w, (0, pad)).reshape(rows, groups, size)
    max_abs = wg.abs().amax(dim=2, keepdim=True)
    best_err = torch.full((rows, groups), float("inf"), device=w.device)
    best_max = max_abs.clone()
    for step in range(int(CLIP_MAX_SHRINK * grid)):
        limit = max_abs * (1 - step / grid)
        clipped = torch.maximum(torch.minimum(wg, limit), -limit)
        rounded = rounder(clipped.reshape(rows, -1)[:, :columns])
        delta = wg - F.pad(rounded, (0, pad)).reshape(rows, groups, size)
        err = torch.einsum("rgi,gij,rgj->rg", delta, blocks, delta)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_max = torch.where(better[..., None], limit, best_max)
    return torch.maximum(torch.minimum(wg, best_max), -best_max).reshape(rows, -1)[:, :columns]
