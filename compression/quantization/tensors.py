"""Quantized tensors: codes plus their grid, binary and ternary codes, and what quantization did to each layer."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from compression.quantization.config import QuantConfig
from compression.quantization.primitives import (EPS, QParams, _broadcast, check_finite, choose_qparams,
                                                 clipped_mask, dequantize_codes, quantize_codes, reduce)


@dataclass(frozen=True, eq=False)
class QTensor:
    """Integer codes plus what turns them back into floats; `kind` "binary" means x̂ = (2c - 1) * scale."""

    codes: Tensor  # int8, int16 or int32 (primitives.code_dtype), the shape of the original tensor
    qparams: QParams
    bits: int
    kind: str = "affine"  # "affine" | "binary"

    def dequantize(self) -> Tensor:
        if self.kind == "binary":
            scale = _broadcast(self.qparams.scale, self.codes, self.qparams.axis)
            return torch.where(self.codes > 0, scale, -scale)
        return dequantize_codes(self.codes, self.qparams)


def binarize(x: Tensor, axis: int | None = None) -> QTensor:
    """1 bit: sign(x) x mean|x| (per channel along `axis`); zero counts as positive."""
    check_finite(x)
    alpha = reduce(x.abs(), axis, "mean").clamp_min(EPS)
    codes = (x >= 0).to(torch.int8)
    return QTensor(codes, QParams(alpha, torch.zeros_like(alpha, dtype=torch.int32), 0, 1, axis), 1, "binary")


def ternarize(x: Tensor, axis: int | None = None) -> QTensor:
    """2 bits: {-a, 0, +a} with threshold 0.7 x mean|x| and a = mean|x| above it (Li & Liu 2016)."""
    check_finite(x)
    threshold = 0.7 * reduce(x.abs(), axis, "mean")
    keep = x.abs() > _broadcast(threshold, x, axis)
    kept_sum = reduce(x.abs() * keep, axis, "sum")
    kept_count = reduce(keep.float(), axis, "sum")
    alpha = torch.where(kept_count > 0, kept_sum / kept_count.clamp_min(1), torch.zeros_like(kept_sum))
    alpha = alpha.clamp_min(EPS)
    codes = (torch.sign(x) * keep).to(torch.int8)
    return QTensor(codes, QParams(alpha, torch.zeros_like(alpha, dtype=torch.int32), -1, 1, axis), 2)


def grid_for(x: Tensor, bits: int, config: QuantConfig, axis: int = 0) -> QParams:
    """The grid `config` puts on tensor `x` at `bits` (axis = its output-channel axis)."""
    channel_axis = axis if config.granularity == "per-channel" and x.ndim > 1 else None
    group = config.group if x.ndim > 1 and axis == 0 else None  # groups run along the inputs of each output row
    if config.granularity == "per-group" and group is None and x.ndim > 1:
        channel_axis = axis  # weights stored (in, out), e.g. ONNX MatMul: one grid per output channel
    return choose_qparams(x, bits, config.symmetric, channel_axis, config.range_method, config.percentile, group,
                          config.fp16_scales)


def quantize_tensor(x: Tensor, bits: int, config: QuantConfig, axis: int = 0) -> QTensor:
    """Codes for one weight tensor under `config` at `bits` (round-to-nearest)."""
    channel_axis = axis if config.granularity != "per-tensor" and x.ndim > 1 else None
    if bits == 1 and config.binary:
        return binarize(x, channel_axis)
    if bits == 2 and config.ternary:
        return ternarize(x, channel_axis)
    qparams = grid_for(x, bits, config, axis)
    return QTensor(quantize_codes(x, qparams), qparams, bits)


def on_grid(x: Tensor, qparams: QParams, bits: int) -> QTensor:
    """The QTensor of weights that already lie on `qparams` (what GPTQ and AWQ produce)."""
    return QTensor(quantize_codes(x, qparams), qparams, bits)


def sqnr_db(x: Tensor, x_hat: Tensor) -> float:
    """Signal-to-quantization-noise ratio in dB (inf when exact, 0-signal tensors give 0 dB)."""
    noise = (x.double() - x_hat.double()).pow(2).sum().item()
    signal = x.double().pow(2).sum().item()
    if noise == 0.0:
        return math.inf
    return 10.0 * math.log10(signal / noise) if signal > 0 else 0.0


def grid_levels(qtensor: QTensor, channel: int | None = None) -> list[float]:
    """The values a tensor (or one channel or group of it) can take after quantization, smallest first."""
    scale = qtensor.qparams.scale.reshape(-1)
    zero = qtensor.qparams.zero_point.reshape(-1)
    if scale.numel() > 1:
        index = int(channel if channel is not None else torch.argmax(scale))
        scale, zero = scale[index], zero[index]
    else:
        scale, zero = scale.reshape(()), zero.reshape(())
    if qtensor.kind == "binary":
        return [-float(scale), float(scale)]
    q = torch.arange(qtensor.qparams.quant_min, qtensor.qparams.quant_max + 1)
    return ((q - zero).float() * scale).tolist()


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
    """Round each named weight to its grid (never in place); `axes` gives output-channel axes (default 0)."""
    axes = axes or {}
    qtensors = {}
    for name, w in weights.items():
        check_finite(w, f"weight {name}")
        qtensors[name] = quantize_tensor(w.detach().float(), config.bits_for(name), config, axes.get(name, 0))
    return measured(weights, qtensors)


def measured(weights: Mapping[str, Tensor], qtensors: Mapping[str, QTensor]) -> QuantizedWeights:
    """Dequantized weights and per-layer SQNR of `qtensors` against the original `weights`."""
    deq = {name: qt.dequantize() for name, qt in qtensors.items()}
    layers = tuple(layer_quant(name, weights[name].detach().float(), qt) for name, qt in qtensors.items())
    return QuantizedWeights(qtensors, deq, layers)
