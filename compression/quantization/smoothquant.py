"""SmoothQuant: move activation outliers into the weights, s_j = max|X_j|^α / max|W_j|^(1−α), then W·A· fake
quantization (weights per output channel, activations per token or per tensor, both symmetric)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from compression.core.errors import InputError
from compression.quantization.config import check_bits, check_choice

ACT_GRANULARITIES = ("per-token", "per-tensor")


@dataclass(frozen=True)
class SmoothQuantConfig:
    """W·A· fake quantization of the linears a norm feeds, after migrating s_j into that norm (smooth=False: the
    naive baseline, the same bits without migration)."""

    alpha: float = 0.5
    smooth: bool = True
    weight_bits: int = 8
    act_bits: int = 8
    act_granularity: str = "per-token"

    def __post_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise InputError(f"alpha must be in [0, 1], got {self.alpha}")
        check_bits(self.weight_bits, "weight bits")
        check_bits(self.act_bits, "activation bits")
        if self.weight_bits < 2 or self.act_bits < 2:
            raise InputError("W·A· quantization needs at least 2 bits for weights and activations")
        check_choice("activation granularity", self.act_granularity, ACT_GRANULARITIES)

    @property
    def needs_calibration(self) -> bool:
        return self.smooth

    @property
    def label(self) -> str:
        name = f"smoothquant α={self.alpha:g}" if self.smooth else "naive"
        return f"{name} W{self.weight_bits}A{self.act_bits}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SmoothQuantConfig:
        data = {k: v for k, v in data.items() if k != "kind"}
        try:
            return cls(**data)
        except TypeError as exc:
            raise InputError(f"bad SmoothQuant config: {exc}") from None


def smooth_scales(act_max: Tensor, weight_max: Tensor, alpha: float) -> Tensor:
    """s (in,) from max|X_j| over tokens and max|W_j| over the output rows of every linear fed by the op."""
    s = act_max.float().clamp(min=1e-5).pow(alpha) / weight_max.float().clamp(min=1e-5).pow(1 - alpha)
    return s.clamp(min=1e-5)


@torch.no_grad()
def scale_norm(norm: torch.nn.Module, scale: Tensor) -> None:
    """Divide a norm's outputs by `scale` (per channel): its weight and, for LayerNorm, its bias."""
    norm.weight.div_(scale.to(norm.weight.dtype))
    if getattr(norm, "bias", None) is not None:
        norm.bias.div_(scale.to(norm.bias.dtype))
