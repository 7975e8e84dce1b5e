"""Wanda (Sun et al. 2023): score each weight by |W_ij|·‖X_j‖₂ and prune the lowest per output row. No update."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from compression.pruning.masks import nm_keep, row_keep


def wanda_scores(w: Tensor, input_norm: Tensor) -> Tensor:
    """|W_ij|·‖X_j‖₂ for w (out, in), input_norm (in,) the L2 norm of each input over the calibration tokens."""
    return w.abs() * input_norm[None, :]


def wanda_prune(w: Tensor, input_norm: Tensor, amount: float, nm: tuple[int, int] | None = None) -> Tensor:
    """Zero the lowest scores within each output row (or keep the N best of every M inputs)."""
    scores = wanda_scores(w, input_norm)
    return w * (nm_keep(scores, *nm) if nm else row_keep(scores, amount))


@dataclass(frozen=True, eq=False)
class KeepContrast:
    """Which weights of one layer (out, in) Wanda keeps and which magnitude keeps, each per row at one sparsity."""

    wanda: Tensor  # bool keep mask
    magnitude: Tensor  # bool keep mask
    input_norm: Tensor  # (in,) ‖X_j‖₂, the score's second factor

    @property
    def wanda_only(self) -> Tensor:
        """(in,) per input channel: the weights Wanda keeps that magnitude drops."""
        return (self.wanda & ~self.magnitude).sum(0)

    @property
    def magnitude_only(self) -> Tensor:
        """(in,) per input channel: the weights magnitude keeps that Wanda drops."""
        return (self.magnitude & ~self.wanda).sum(0)


def contrast_with_magnitude(w: Tensor, input_norm: Tensor, amount: float,
                            nm: tuple[int, int] | None = None) -> KeepContrast:
    """Wanda's keep mask beside magnitude's (|W_ij| alone), both per row (or N of every M) at the same sparsity: the
    two differ where an input channel is loud enough for ‖X_j‖ to outweigh a weight's small size."""
    def keep(scores: Tensor) -> Tensor:
        return nm_keep(scores, *nm) if nm else row_keep(scores, amount)
    return KeepContrast(keep(wanda_scores(w, input_norm)), keep(w.abs()), input_norm.float())
