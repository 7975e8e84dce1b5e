"""Wanda (Sun et al. 2023): score each weight by |W_ij|·‖X_j‖₂ and prune the lowest per output row. No update."""

from __future__ import annotations

from torch import Tensor

from compression.pruning.masks import nm_keep, row_keep


def wanda_scores(w: Tensor, input_norm: Tensor) -> Tensor:
    """|W_ij|·‖X_j‖₂ for w (out, in), input_norm (in,) the L2 norm of each input over the calibration tokens."""
    return w.abs() * input_norm[None, :]


def wanda_prune(w: Tensor, input_norm: Tensor, amount: float, nm: tuple[int, int] | None = None) -> Tensor:
    """Zero the lowest scores within each output row (or keep the N best of every M inputs)."""
    scores = wanda_scores(w, input_norm)
    return w * (nm_keep(scores, *nm) if nm else row_keep(scores, amount))
