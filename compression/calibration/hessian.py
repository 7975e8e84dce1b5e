"""The second-order machinery SparseGPT and GPTQ share: H = 2XᵀX/n, dampening, the Cholesky factor of H⁻¹;
and the per-input statistics the calibrated methods read, computed once per input tensor."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

MAX_DAMP_TRIES = 6  # percdamp x1, x10, ... before giving up on a factorization
ERROR_TOKENS = 512  # evenly spaced calibration tokens on which each layer's relative output error is measured


@dataclass(frozen=True, eq=False)
class InverseFactor:
    """U with UᵀU = (H + λI)⁻¹, upper triangular; `dead` marks inputs that never fired (zero diagonal)."""

    u: Tensor  # (in, in)
    dead: Tensor  # (in,) bool
    percdamp: float  # the dampening actually used, as a fraction of mean(diag H)
    note: str | None  # set when dampening had to be raised


def hessian(x: Tensor) -> Tensor:
    """H = 2XᵀX/n for inputs x of shape (tokens, in), in float32."""
    x = x.float()
    return 2.0 * x.t() @ x / max(x.shape[0], 1)


def inverse_factor(h: Tensor, percdamp: float) -> InverseFactor:
    """Damp H, factor it, invert it; on a failed Cholesky raise dampening tenfold and say so, never crash."""
    h = h.clone().float()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    mean_diag = torch.diag(h).abs().mean()
    damp = percdamp
    for attempt in range(MAX_DAMP_TRIES):
        damped = h + damp * mean_diag * torch.eye(h.shape[0], dtype=h.dtype, device=h.device)
        lower, info = torch.linalg.cholesky_ex(damped)
        if info.item() == 0:
            inverse = torch.cholesky_inverse(lower)
            upper, info = torch.linalg.cholesky_ex(inverse, upper=True)
            if info.item() == 0:
                note = None if attempt == 0 else (f"Cholesky failed at dampening {percdamp:g}; "
                                                  f"raised to {damp:g}")
                return InverseFactor(upper, dead, damp, note)
        damp = max(damp, 1e-6) * 10
    # Hopeless (e.g. NaNs): a diagonal factor, i.e. plain rounding without error compensation
    upper = torch.diag(torch.rsqrt(torch.diag(h).clamp_min(1e-12)))
    return InverseFactor(upper, dead, damp, f"Cholesky failed even at dampening {damp:g}; no error compensation")


def gram(x: Tensor, max_tokens: int | None = None) -> Tensor:
    """XᵀX over (at most `max_tokens` evenly spaced) rows of x (tokens, in), in float32."""
    x = subsample(x, max_tokens).float()
    return x.t() @ x


def subsample(x: Tensor, max_tokens: int | None) -> Tensor:
    """At most `max_tokens` evenly spaced rows of x (tokens, in)."""
    if max_tokens and x.shape[0] > max_tokens:
        x = x[:: -(-x.shape[0] // max_tokens)]
    return x


def subsample_size(tokens: int, max_tokens: int | None) -> int:
    """How many rows `subsample` keeps of `tokens`."""
    if not max_tokens or tokens <= max_tokens:
        return tokens
    return -(-tokens // -(-tokens // max_tokens))


def relative_error(w: Tensor, w_hat: Tensor, x: Tensor, max_tokens: int | None = None) -> float:
    """‖XWᵀ − XŴᵀ‖² / ‖XWᵀ‖² for inputs x (tokens, in), on at most `max_tokens` of them."""
    x = subsample(x, max_tokens).float()
    reference = x @ w.float().t()
    diff = reference - x @ w_hat.float().t()
    return (diff.pow(2).sum() / reference.pow(2).sum().clamp_min(1e-30)).item()


def row_output_errors(w: Tensor, w_hat: Tensor, h: Tensor) -> Tensor:
    """‖X(w_i − ŵ_i)‖² / ‖Xw_i‖² of each output row i (out,), from H = 2XᵀX/n alone (the 2/n cancels)."""
    w, e = w.float(), (w.float() - w_hat.float())
    return ((e @ h) * e).sum(1) / ((w @ h) * w).sum(1).clamp_min(1e-30)


class InputStats:
    """H = 2XᵀX/n and ‖X_j‖₂ per input tensor, computed once for linears that share one input (q, k, v)."""

    def __init__(self, inputs: dict[str, Tensor]):
        self._inputs, self._done = inputs, {}

    def _once(self, what: str, role: str, compute) -> Tensor:
        x = self._inputs[role]
        if (what, id(x)) not in self._done:
            self._done[(what, id(x))] = compute(x)
        return self._done[(what, id(x))]

    def hessian(self, role: str) -> Tensor:
        return self._once("hessian", role, hessian)

    def column_norms(self, role: str) -> Tensor:
        """‖X_j‖₂ of each input channel over the calibration tokens (Wanda's statistic)."""
        return self._once("norms", role, lambda x: x.float().pow(2).sum(0).sqrt())
