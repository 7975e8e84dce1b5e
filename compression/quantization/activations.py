"""Static post-training quantization of weights and activations: observers, a calibration pass, fake-quant hooks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from compression.core.errors import InputError
from compression.metrics import evaluate
from compression.models.architectures import WEIGHT_LAYERS
from compression.models.loading import LoadedModel
from compression.calibration import calibration_images
from compression.quantization.config import QuantConfig, check_bits
from compression.quantization.hooks import InputFakeQuant
from compression.quantization.primitives import QParams, choose_qparams
from compression.quantization.ptq import quantize

OBSERVERS = ("min-max", "percentile", "moving-average")
QUANTIZED_LAYERS = WEIGHT_LAYERS
_MAX_KEPT = 1_000_000  # values a percentile observer keeps per layer


@dataclass(frozen=True)
class ActivationQuantConfig:
    """Weights as `weights` says; the input of every Linear/Conv layer rounded to `activation_bits` (asymmetric)."""

    weights: QuantConfig = field(default_factory=QuantConfig)
    activation_bits: int = 8
    observer: str = "min-max"
    percentile: float = 99.99  # percentile observer: clip activations above this percentile
    averaging_constant: float = 0.01  # moving-average observer: weight of each new batch's min/max
    calibration_batches: int = 4
    batch_size: int = 64

    def __post_init__(self):
        check_bits(self.activation_bits, "activation_bits")
        if self.observer not in OBSERVERS:
            raise InputError(f"observer must be one of {', '.join(OBSERVERS)}, got {self.observer!r}")
        if not 50.0 < self.percentile <= 100.0:
            raise InputError(f"percentile must be in (50, 100], got {self.percentile}")
        if not 0.0 < self.averaging_constant <= 1.0:
            raise InputError(f"averaging_constant must be in (0, 1], got {self.averaging_constant}")
        if self.calibration_batches < 1 or self.batch_size < 1:
            raise InputError("calibration needs at least one batch of at least one sample")

    def to_dict(self) -> dict:
        return {**asdict(self), "weights": self.weights.to_dict()}


class Observer:
    """Records the range of the values it sees; `qparams` turns it into an asymmetric grid."""

    def __init__(self, config: ActivationQuantConfig):
        self.config = config
        self.lo: Tensor | None = None
        self.hi: Tensor | None = None
        self.kept: list[Tensor] = []
        self.count = 0

    def observe(self, x: Tensor) -> None:
        x = x.detach().float()
        lo, hi = x.min(), x.max()
        self.count += x.numel()
        if self.config.observer == "percentile":
            budget = _MAX_KEPT - sum(t.numel() for t in self.kept)
            if budget > 0:
                self.kept.append(x.reshape(-1)[:budget].clone())
        if self.lo is None:
            self.lo, self.hi = lo, hi
        elif self.config.observer == "moving-average":
            c = self.config.averaging_constant
            self.lo, self.hi = self.lo + c * (lo - self.lo), self.hi + c * (hi - self.hi)
        else:
            self.lo, self.hi = torch.minimum(self.lo, lo), torch.maximum(self.hi, hi)

    def qparams(self) -> QParams:
        if self.lo is None:
            raise InputError("an observer saw no data; run calibration first")
        bits = self.config.activation_bits
        if self.config.observer == "percentile":
            return choose_qparams(torch.cat(self.kept), bits, symmetric=False, range_method="percentile",
                                  percentile=self.config.percentile)
        return choose_qparams(torch.stack([self.lo, self.hi]), bits, symmetric=False)


@dataclass(frozen=True)
class ActivationRange:
    layer: str
    lo: float  # the grid's smallest and largest values
    hi: float
    scale: float
    zero_point: int


@dataclass(frozen=True, eq=False)
class ActivationQuantResult:
    """A new model with quantized weights and quantized layer inputs, measured on held-out data."""

    config: ActivationQuantConfig
    model: LoadedModel
    accuracy: float
    weight_only_accuracy: float
    baseline_accuracy: float
    calibration_samples: int
    ranges: tuple[ActivationRange, ...]

    def to_dict(self) -> dict:
        return {"config": self.config.to_dict(), "model": self.model.name, "accuracy": self.accuracy,
                "weight_only_accuracy": self.weight_only_accuracy, "baseline_accuracy": self.baseline_accuracy,
                "calibration_samples": self.calibration_samples, "ranges": [asdict(r) for r in self.ranges]}


def calibration_inputs(model: LoadedModel, batches: int, batch_size: int, seed: int = 0) -> Tensor:
    """`batches` × `batch_size` training images chosen by `seed` (never the test labels)."""
    return calibration_images(model.dataset, batches * batch_size, seed)


def quantize_activations(model: LoadedModel, config: ActivationQuantConfig) -> ActivationQuantResult:
    """Quantize weights, calibrate activation ranges on a few batches, and return a new fake-quantized model."""
    if model.module is None:
        raise InputError("activation quantization needs a PyTorch model (ONNX models: weights only)")
    weight_only = quantize(model, config.weights)
    new = weight_only.to_model(f"{model.name} (W{config.weights.bits}A{config.activation_bits})")
    layers = {name: m for name, m in new.module.named_modules() if isinstance(m, QUANTIZED_LAYERS)}
    observers = {name: Observer(config) for name in layers}
    handles = [m.register_forward_pre_hook(lambda _m, args, o=observers[name]: o.observe(args[0]))
               for name, m in layers.items()]
    inputs = calibration_inputs(model, config.calibration_batches, config.batch_size)
    try:
        with torch.no_grad():
            new.module.eval()
            for i in range(0, len(inputs), config.batch_size):
                new.module(inputs[i:i + config.batch_size])
    finally:
        for handle in handles:
            handle.remove()
    ranges = []
    for name, layer in layers.items():
        qp = observers[name].qparams()
        layer.register_forward_pre_hook(InputFakeQuant(qp))
        zero, scale = int(qp.zero_point), float(qp.scale)
        ranges.append(ActivationRange(name, (qp.quant_min - zero) * scale, (qp.quant_max - zero) * scale,
                                      scale, zero))
    result = evaluate(new.module, model.dataset.x_test, model.dataset.y_test)
    return ActivationQuantResult(config, new, result.accuracy, weight_only.accuracy, weight_only.baseline_accuracy,
                                 len(inputs), tuple(ranges))
