"""SmoothQuant: move activation outliers into the weights, s_j = max|X_j|^α / max|W_j|^(1−α), then W·A· fake
quantization (weights per output channel, activations per token or per tensor, both symmetric)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def smooth_scales(act_max: Tensor, weight_max: Tensor, alpha: float) -> Tensor:
    """s (in,) from max|X_j| over tokens and max|W_j| over the output rows of every linear fed by the op."""
    s = act_max.float().clamp(min=1e-5).pow(alpha) / weight_max.float().clamp(min=1e-5).pow(1 - alpha)
    return s.clamp(min=1e-5)


def quantize_activations(x: Tensor, bits: int, granularity: str) -> Tensor:
    """Symmetric fake quantization of activations (..., d): one scale per token or one for the whole tensor."""
    qmax = 2 ** (bits - 1) - 1
    if granularity == "per-token":
        scale = x.abs().amax(dim=-1, keepdim=True)
    else:
        scale = x.abs().amax()
    scale = (scale / qmax).clamp(min=1e-8)
    return torch.clamp(torch.round(x / scale), -qmax, qmax) * scale


class ActivationQuantizer:
    """A forward pre-hook that fake-quantizes a linear's input (a runtime property: not saved with weights)."""

    def __init__(self, bits: int, granularity: str):
        self.bits, self.granularity = bits, granularity

    def __call__(self, module: nn.Module, args: tuple) -> tuple:
        return (quantize_activations(args[0], self.bits, self.granularity), *args[1:])
