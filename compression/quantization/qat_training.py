"""Quantization-aware training: fake-quantized weights in the forward pass, fp32 master weights updated via the STE.

Both verbs are generators of training Steps (from compression.training.fit) whose `return` value is the result.
"""

from __future__ import annotations

import copy
from collections.abc import Generator
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from compression.core.errors import InputError
from compression.metrics import evaluate
from compression.models.architectures import WEIGHT_LAYERS
from compression.models.loading import LoadedModel
from compression.quantization.config import QuantConfig
from compression.quantization.ptq import QuantResult, quantize
from compression.quantization.tensors import quantize_tensor
from compression.training import Step, TrainConfig, fit

QAT_LAYERS = WEIGHT_LAYERS


@dataclass(frozen=True)
class QATConfig:
    """The grid to train for, and how long and how fast to fine-tune."""

    quant: QuantConfig = field(default_factory=lambda: QuantConfig(bits=4))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=10, lr=1e-3))

    def to_dict(self) -> dict:
        return {"quant": self.quant.to_dict(), "train": asdict(self.train)}


class FakeQuantSTE(nn.Module):
    """Weight parametrization: forward sees the quantized weight, backward passes the gradient straight through."""

    def __init__(self, config: QuantConfig, bits: int):
        super().__init__()
        self.config, self.bits = config, bits

    def forward(self, weight: Tensor) -> Tensor:
        with torch.no_grad():
            target = quantize_tensor(weight, self.bits, self.config, axis=0).dequantize()
        return weight + (target - weight).detach()  # value = target; d(out)/d(weight) = identity


@dataclass(frozen=True, eq=False)
class QATResult:
    """The trained fp32 master model, its quantized version, and the PTQ accuracy it is compared with."""

    config: QATConfig
    master: LoadedModel
    quantized: QuantResult
    ptq_accuracy: float  # the same grid applied to the original model without training
    baseline_accuracy: float  # the original fp32 model

    @property
    def accuracy(self) -> float:
        return self.quantized.accuracy

    def to_dict(self) -> dict:
        return {"config": self.config.to_dict(), "model": self.quantized.source.name, "bits": self.config.quant.bits,
                "accuracy": self.accuracy, "ptq_accuracy": self.ptq_accuracy,
                "baseline_accuracy": self.baseline_accuracy, "size_bytes": self.quantized.size_bytes}


@dataclass(frozen=True, eq=False)
class ControlResult:
    """The honest control: the same extra epochs in plain fp32, then the same PTQ grid."""

    config: QATConfig
    model: LoadedModel
    accuracy: float  # fp32 after the extra epochs
    ptq_accuracy: float  # that model quantized without QAT
    baseline_accuracy: float

    def to_dict(self) -> dict:
        return {"config": self.config.to_dict(), "model": self.model.name, "bits": self.config.quant.bits,
                "accuracy": self.accuracy, "ptq_accuracy": self.ptq_accuracy,
                "baseline_accuracy": self.baseline_accuracy}


def qat(model: LoadedModel, config: QATConfig) -> Generator[Step, None, QATResult]:
    """Fine-tune a copy of `model` with fake-quantized weights, yielding Steps; returns a QATResult."""
    module = _trainable_copy(model)
    layers = [m for m in module.modules() if isinstance(m, QAT_LAYERS)]
    names = [name for name, m in module.named_modules() if isinstance(m, QAT_LAYERS)]
    for name, layer in zip(names, layers):
        parametrize.register_parametrization(layer, "weight", FakeQuantSTE(config.quant,
                                                                           config.quant.bits_for(f"{name}.weight")))
    yield from fit(module, model.dataset, config.train)
    for layer in layers:  # keep the fp32 master weights, drop the fake-quant wrapper
        parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
    master = _loaded(model, module.eval(), f"{model.name} (QAT {config.quant.bits}-bit master)")
    return QATResult(config, master, quantize(master, config.quant), quantize(model, config.quant).accuracy,
                     _accuracy(model))


def fp32_control(model: LoadedModel, config: QATConfig) -> Generator[Step, None, ControlResult]:
    """The same fine-tuning without fake quantization, so QAT's gain is not mistaken for extra training."""
    module = _trainable_copy(model)
    yield from fit(module, model.dataset, config.train)
    trained = _loaded(model, module.eval(), f"{model.name} (+{config.train.epochs} fp32 epochs)")
    return ControlResult(config, trained, _accuracy(trained), quantize(trained, config.quant).accuracy,
                         _accuracy(model))


def _trainable_copy(model: LoadedModel) -> nn.Module:
    if model.module is None:
        raise InputError("quantization-aware training needs a PyTorch model (ONNX has no gradients here)")
    if not model.dataset.has_train:
        raise InputError(f"quantization-aware training needs a training split; {model.dataset.name} has none")
    torch.manual_seed(0)  # dropout-free models, but keep any randomness reproducible
    return copy.deepcopy(model.module)


def _loaded(model: LoadedModel, module: nn.Module, name: str) -> LoadedModel:
    return LoadedModel(name, model.source, model.dataset, module=module, arch=model.arch)


def _accuracy(model: LoadedModel) -> float:
    return evaluate(model.module, model.dataset.x_test, model.dataset.y_test).accuracy


@dataclass(frozen=True)
class Progress:
    """A training step tagged with the run it belongs to ("QAT" or "fp32 control")."""

    run: str
    step: Step


@dataclass(frozen=True, eq=False)
class QATComparison:
    qat: QATResult
    control: ControlResult

    def to_dict(self) -> dict:
        return {"qat": self.qat.to_dict(), "control": self.control.to_dict()}


def qat_with_control(model: LoadedModel, config: QATConfig) -> Generator[Progress, None, QATComparison]:
    """QAT, then the fp32 control with the same epochs; yields tagged steps, returns both results."""
    qat_result = yield from _tagged(qat(model, config), "QAT")
    control = yield from _tagged(fp32_control(model, config), "fp32 control")
    return QATComparison(qat_result, control)


def _tagged(run: Generator[Step, None, object], name: str) -> Generator[Progress, None, object]:
    try:
        while True:
            try:
                step = next(run)
            except StopIteration as stop:
                return stop.value
            yield Progress(name, step)
    finally:
        run.close()  # on cancel, let fit's own cleanup run now
