"""SmoothQuant: move activation outliers into the weights, s_j = max|X_j|^α / max|W_j|^(1−α), then W·A· fake
quantization (weights per output channel, activations per token or per tensor, both symmetric)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from compression.core.errors import InputError
from compression.quantization.config import check_bits, check_choice
from compression.quantization.primitives import fake_quantize_dynamic, quant_range

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


def w_a_error(x: Tensor, w: Tensor, w_hat: Tensor, s: Tensor | None, act_bits: int, granularity: str) -> float:
    """‖XWᵀ − Q(X/s)Ŵᵀ‖² / ‖XWᵀ‖² on inputs x (tokens, in): the output error of W·A· quantization, where Ŵ holds the
    quantized diag(s)·W (s None: no smoothing)."""
    x = x.float()
    reference = x @ w.float().t()
    xq = fake_quantize_dynamic(x / s if s is not None else x, act_bits, granularity)
    diff = reference - xq @ w_hat.float().t()
    return (diff.pow(2).sum() / reference.pow(2).sum().clamp_min(1e-30)).item()


@dataclass(frozen=True, eq=False)
class Smoothing:
    """What migrating s into the weights does to one linear's input channels, and to the activations' grid."""

    scale: Tensor  # (in,) s
    act_max: Tensor  # (in,) max|X_j| over the tokens, before
    weight_max: Tensor  # (in,) max|W_j| over the rows of every linear the same op feeds, before
    outlier: int  # the loudest input channel
    tokens: int  # the tokens the steps are measured on: per token, those whose largest value is the outlier's
    step: float  # the activation grid's step with every channel in its range (per token: the median token's)
    step_without_outlier: float  # the same with the loudest channel left out of the range
    step_smoothed: float  # the same after X_j is divided by s_j

    @property
    def act_max_smoothed(self) -> Tensor:
        return self.act_max / self.scale

    @property
    def weight_max_smoothed(self) -> Tensor:
        return self.weight_max * self.scale


def smoothing_effect(x: Tensor, weight_max: Tensor, alpha: float, bits: int, granularity: str) -> Smoothing:
    """SmoothQuant's s for inputs x (tokens, in) and what it does to the `bits`-bit symmetric activation grid
    (`granularity` per token or per tensor): how coarse the step is with the loudest channel, without it, and after
    smoothing. One outlier channel sets the range, so every other channel gets a few of the grid's levels.

    Per token, each token has a grid of its own, so the steps are measured on the tokens whose largest value is in
    the outlier channel (a massive activation may sit on a handful of tokens only), or on all if there are none.
    """
    x = x.float()
    act_max = x.abs().amax(0)
    s = smooth_scales(act_max, weight_max, alpha)
    outlier = int(act_max.argmax())
    quant_max = quant_range(bits, True)[1]
    if granularity == "per-token":
        hit = x.abs().argmax(1) == outlier
        x = x[hit] if hit.any() else x

    def step(v: Tensor) -> float:
        amax = v.abs().amax(-1) if granularity == "per-token" else v.abs().amax()
        return float(amax.median()) / quant_max  # per tensor: the median of one value is that value

    others = torch.ones_like(act_max, dtype=torch.bool)
    others[outlier] = False
    return Smoothing(s, act_max, weight_max.float(), outlier, x.shape[0], step(x), step(x[:, others]), step(x / s))
