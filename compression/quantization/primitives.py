"""Pure quantization math: scales and zero points (1 to 16 bits), fake quantization, binary and ternary codes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from compression.core.errors import InputError

SCHEMES = ("symmetric", "asymmetric")
GRANULARITIES = ("per-tensor", "per-channel")
RANGES = ("min-max", "percentile", "mse")
MIN_BITS, MAX_BITS = 1, 16
# Same floor as PyTorch's observers: a constant or all-zero tensor gets this scale instead of Δ = 0.
EPS = torch.finfo(torch.float32).eps
_MSE_CANDIDATES = torch.linspace(1.0, 0.2, 33)  # fractions of the min-max range tried by the MSE search


def check_bits(bits: int, what: str = "bits") -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise InputError(f"{what} must be an integer from {MIN_BITS} to {MAX_BITS}, got {bits!r}")


@dataclass(frozen=True)
class QuantConfig:
    """How weights are rounded; `layer_bits` overrides `bits` per layer (mixed precision)."""

    bits: int = 8
    scheme: str = "symmetric"
    granularity: str = "per-channel"
    range_method: str = "min-max"
    percentile: float = 99.9  # for range_method="percentile": clip at this percentile of the values
    binary: bool = False  # 1-bit layers become sign(w) x mean|w| instead of a uniform 2-level grid
    ternary: bool = False  # 2-bit layers become {-a, 0, +a} with threshold 0.7 x mean|w|
    layer_bits: tuple[tuple[str, int], ...] = ()

    def __post_init__(self):
        check_bits(self.bits)
        for name, value, allowed in (("scheme", self.scheme, SCHEMES), ("granularity", self.granularity,
                                     GRANULARITIES), ("range_method", self.range_method, RANGES)):
            if value not in allowed:
                raise InputError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if not 50.0 < self.percentile <= 100.0:
            raise InputError(f"percentile must be in (50, 100], got {self.percentile}")
        pairs = tuple(sorted(dict(self.layer_bits).items()))  # accept a dict, store a hashable tuple
        for layer, bits in pairs:
            check_bits(bits, f"bits of layer {layer}")
        object.__setattr__(self, "layer_bits", pairs)

    @property
    def symmetric(self) -> bool:
        return self.scheme == "symmetric"

    def bits_for(self, layer: str) -> int:
        return dict(self.layer_bits).get(layer, self.bits)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["layer_bits"] = dict(self.layer_bits)
        return out


@dataclass(frozen=True, eq=False)
class QParams:
    """Scale and zero point: x̂ = (clamp(round(x / scale) + zero_point, quant_min, quant_max) - zero_point) * scale."""

    scale: Tensor  # float32: () per tensor, (C,) per channel
    zero_point: Tensor  # int32, same shape as scale
    quant_min: int
    quant_max: int
    axis: int | None = None  # the channel axis for per-channel parameters


@dataclass(frozen=True, eq=False)
class QTensor:
    """Integer codes plus what turns them back into floats; `kind` "binary" means x̂ = (2c - 1) * scale."""

    codes: Tensor  # int32, the shape of the original tensor
    qparams: QParams
    bits: int
    kind: str = "affine"  # "affine" | "binary"

    def dequantize(self) -> Tensor:
        scale = _broadcast(self.qparams.scale, self.codes, self.qparams.axis)
        if self.kind == "binary":
            return torch.where(self.codes > 0, scale, -scale)
        zero = _broadcast(self.qparams.zero_point, self.codes, self.qparams.axis)
        return (self.codes - zero).float() * scale


def quant_range(bits: int, symmetric: bool) -> tuple[int, int]:
    """Integer range of `bits`-bit codes: signed for symmetric, unsigned for asymmetric (as in PyTorch)."""
    check_bits(bits)
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if symmetric else (0, 2 ** bits - 1)


def choose_qparams(x: Tensor, bits: int, symmetric: bool = True, axis: int | None = None,
                   range_method: str = "min-max", percentile: float = 99.9) -> QParams:
    """Scale and zero point covering `x` (per channel along `axis`), the range chosen by `range_method`."""
    check_finite(x)
    quant_min, quant_max = quant_range(bits, symmetric)
    if range_method == "mse":
        return _mse_qparams(x, bits, symmetric, axis)
    lo, hi = _value_range(x, axis, range_method, percentile, symmetric)
    return _qparams_from_range(lo, hi, quant_min, quant_max, symmetric, axis)


def fake_quantize(x: Tensor, qparams: QParams) -> Tensor:
    """Round to the grid and back in float32, multiplying by 1/scale exactly like torch.fake_quantize_*."""
    scale = _broadcast(qparams.scale, x, qparams.axis)
    zero = _broadcast(qparams.zero_point, x, qparams.axis).float()
    q = torch.clamp(torch.round(x * (1.0 / scale)) + zero, qparams.quant_min, qparams.quant_max)
    return (q - zero) * scale


def quantize_codes(x: Tensor, qparams: QParams) -> Tensor:
    """The integer codes (int32) that fake_quantize rounds `x` to."""
    scale = _broadcast(qparams.scale, x, qparams.axis)
    zero = _broadcast(qparams.zero_point, x, qparams.axis).float()
    q = torch.clamp(torch.round(x * (1.0 / scale)) + zero, qparams.quant_min, qparams.quant_max)
    return q.to(torch.int32)


def clipped_mask(x: Tensor, qparams: QParams) -> Tensor:
    """True where `x` lies outside the grid's range, so clamping (not rounding) decides its value."""
    scale = _broadcast(qparams.scale, x, qparams.axis)
    zero = _broadcast(qparams.zero_point, x, qparams.axis).float()
    q = torch.round(x * (1.0 / scale)) + zero
    return (q < qparams.quant_min) | (q > qparams.quant_max)


def binarize(x: Tensor, axis: int | None = None) -> QTensor:
    """1 bit: sign(x) x mean|x| (per channel along `axis`); zero counts as positive."""
    check_finite(x)
    alpha = _reduce(x.abs(), axis, "mean").clamp_min(EPS)
    codes = (x >= 0).to(torch.int32)
    return QTensor(codes, QParams(alpha, torch.zeros_like(alpha, dtype=torch.int32), 0, 1, axis), 1, "binary")


def ternarize(x: Tensor, axis: int | None = None) -> QTensor:
    """2 bits: {-a, 0, +a} with threshold 0.7 x mean|x| and a = mean|x| above it (Li & Liu 2016)."""
    check_finite(x)
    threshold = 0.7 * _reduce(x.abs(), axis, "mean")
    keep = x.abs() > _broadcast(threshold, x, axis)
    kept_sum = _reduce(x.abs() * keep, axis, "sum")
    kept_count = _reduce(keep.float(), axis, "sum")
    alpha = torch.where(kept_count > 0, kept_sum / kept_count.clamp_min(1), torch.zeros_like(kept_sum))
    alpha = alpha.clamp_min(EPS)
    codes = (torch.sign(x) * keep).to(torch.int32)
    return QTensor(codes, QParams(alpha, torch.zeros_like(alpha, dtype=torch.int32), -1, 1, axis), 2)


def quantize_tensor(x: Tensor, bits: int, config: QuantConfig, axis: int = 0) -> QTensor:
    """Codes for one weight tensor under `config` at `bits` (axis = its output-channel axis)."""
    channel_axis = axis if config.granularity == "per-channel" and x.ndim > 1 else None
    if bits == 1 and config.binary:
        return binarize(x, channel_axis)
    if bits == 2 and config.ternary:
        return ternarize(x, channel_axis)
    qparams = choose_qparams(x, bits, config.symmetric, channel_axis, config.range_method, config.percentile)
    return QTensor(quantize_codes(x, qparams), qparams, bits)


def sqnr_db(x: Tensor, x_hat: Tensor) -> float:
    """Signal-to-quantization-noise ratio in dB (inf when exact, 0-signal tensors give 0 dB)."""
    noise = (x.double() - x_hat.double()).pow(2).sum().item()
    signal = x.double().pow(2).sum().item()
    if noise == 0.0:
        return math.inf
    return 10.0 * math.log10(signal / noise) if signal > 0 else 0.0


def grid_levels(qtensor: QTensor, channel: int | None = None) -> list[float]:
    """The values a tensor (or one channel of it) can take after quantization, smallest first."""
    scale = qtensor.qparams.scale
    zero = qtensor.qparams.zero_point
    if scale.ndim:
        index = int(channel if channel is not None else torch.argmax(scale))
        scale, zero = scale[index], zero[index]
    if qtensor.kind == "binary":
        return [-float(scale), float(scale)]
    q = torch.arange(qtensor.qparams.quant_min, qtensor.qparams.quant_max + 1)
    return ((q - zero).float() * scale).tolist()


def check_finite(x: Tensor, name: str = "tensor") -> None:
    if not torch.isfinite(x).all():
        raise InputError(f"{name} contains NaN or Inf values; it cannot be quantized")


def _qparams_from_range(lo: Tensor, hi: Tensor, quant_min: int, quant_max: int, symmetric: bool,
                        axis: int | None) -> QParams:
    lo, hi = lo.clamp_max(0.0), hi.clamp_min(0.0)  # the grid always holds 0 exactly (padding, pruned weights)
    if symmetric:
        # Δ = max|x| / (2^(b-1) - 1): the largest value lands on the grid, the extra negative code stays unused
        scale = (torch.maximum(-lo, hi) / max(quant_max, 1)).clamp_min(EPS)
        zero = torch.zeros_like(scale, dtype=torch.int32)
    else:
        scale = ((hi - lo) / (quant_max - quant_min)).clamp_min(EPS)
        zero = torch.clamp(quant_min - torch.round(lo / scale), quant_min, quant_max).to(torch.int32)
    return QParams(scale.float(), zero, quant_min, quant_max, axis)


def _value_range(x: Tensor, axis: int | None, method: str, percentile: float,
                 symmetric: bool) -> tuple[Tensor, Tensor]:
    if method == "min-max" or percentile >= 100.0:
        return _reduce(x, axis, "amin"), _reduce(x, axis, "amax")
    if symmetric:
        amax = _quantile(x.abs(), axis, percentile / 100.0)
        return -amax, amax
    return _quantile(x, axis, 1.0 - percentile / 100.0), _quantile(x, axis, percentile / 100.0)


def _mse_qparams(x: Tensor, bits: int, symmetric: bool, axis: int | None) -> QParams:
    """Shrink the min-max range by each candidate fraction; keep, per channel, the one with least squared error."""
    quant_min, quant_max = quant_range(bits, symmetric)
    lo, hi = _reduce(x, axis, "amin"), _reduce(x, axis, "amax")
    best, best_err = None, None
    for fraction in _MSE_CANDIDATES.tolist():
        qp = _qparams_from_range(lo * fraction, hi * fraction, quant_min, quant_max, symmetric, axis)
        err = _reduce((fake_quantize(x, qp) - x).pow(2), axis, "sum")
        if best is None:
            best, best_err = qp, err
            continue
        better = err < best_err
        best = QParams(torch.where(better, qp.scale, best.scale), torch.where(better, qp.zero_point, best.zero_point),
                       quant_min, quant_max, axis)
        best_err = torch.minimum(err, best_err)
    return best


def _reduce(x: Tensor, axis: int | None, how: str) -> Tensor:
    """Reduce over everything (axis None) or over every dim but `axis`, giving shape () or (C,)."""
    flat = x.reshape(-1) if axis is None else x.movedim(axis, 0).reshape(x.shape[axis], -1)
    dim = 0 if axis is None else 1
    if how == "amin":
        return flat.amin(dim) if flat.numel() else torch.zeros(flat.shape[:dim])
    if how == "amax":
        return flat.amax(dim) if flat.numel() else torch.zeros(flat.shape[:dim])
    return getattr(flat, how)(dim)


def _quantile(x: Tensor, axis: int | None, q: float) -> Tensor:
    # kthvalue instead of torch.quantile: no 16M-element limit; nearest-rank percentile
    flat = x.reshape(1, -1) if axis is None else x.movedim(axis, 0).reshape(x.shape[axis], -1)
    k = min(flat.shape[1], max(1, math.ceil(q * flat.shape[1])))
    out = flat.float().kthvalue(k, dim=1).values
    return out[0] if axis is None else out


def _broadcast(values: Tensor, like: Tensor, axis: int | None) -> Tensor:
    """Shape (C,) per-channel values so they broadcast along `axis` of `like`."""
    if axis is None or values.ndim == 0:
        return values
    shape = [1] * like.ndim
    shape[axis] = -1
    return values.reshape(shape)


@dataclass(frozen=True)
class LayerQuant:
    """What quantization did to one layer."""

    layer: str
    bits: int
    sqnr_db: float
    clipped_fraction: float
    params: int


def layer_quant(name: str, x: Tensor, qtensor: QTensor) -> LayerQuant:
    """SQNR and clipped fraction of one quantized tensor."""
    clipped = 0.0
    if qtensor.kind == "affine" and qtensor.qparams.quant_max - qtensor.qparams.quant_min > 2:
        clipped = float(clipped_mask(x, qtensor.qparams).float().mean()) if x.numel() else 0.0
    return LayerQuant(name, qtensor.bits, sqnr_db(x, qtensor.dequantize()), clipped, x.numel())


@dataclass(frozen=True)
class QuantizedWeights:
    """Codes and dequantized values of every quantizable weight of a model, with per-layer stats."""

    qtensors: Mapping[str, QTensor]
    weights: Mapping[str, Tensor]
    layers: tuple[LayerQuant, ...] = field(default=())


def quantize_weights(weights: Mapping[str, Tensor], config: QuantConfig,
                     axes: Mapping[str, int] | None = None) -> QuantizedWeights:
    """Quantize each named weight (never in place); `axes` gives output-channel axes (default 0)."""
    axes = axes or {}
    qtensors, deq, layers = {}, {}, []
    for name, w in weights.items():
        check_finite(w, f"weight {name}")
        qt = quantize_tensor(w.detach().float(), config.bits_for(name), config, axes.get(name, 0))
        qtensors[name], deq[name] = qt, qt.dequantize()
        layers.append(layer_quant(name, w.detach().float(), qt))
    return QuantizedWeights(qtensors, deq, tuple(layers))
