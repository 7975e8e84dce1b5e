"""The teacher side of distillation, read-only: its logits, size, hint features; never its shared module."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from compression.core.errors import InputError
from compression.distillation.loss import MAX_TEMPERATURE
from compression.metrics import count_params
from compression.models.architectures import WEIGHT_LAYERS
from compression.models.loading import LoadedModel


class OnnxForward(nn.Module):
    """An ONNX teacher behind an nn.Module call, so it can be timed like a PyTorch one (no gradients)."""

    def __init__(self, model: LoadedModel):
        super().__init__()
        self._onnx = model.onnx

    def forward(self, x: Tensor) -> Tensor:
        return self._onnx.logits(x)


@torch.no_grad()
def teacher_logits(teacher: LoadedModel, x: Tensor, batch_size: int = 2048) -> Tensor:
    """The teacher's logits on x (N, ...), computed without gradients and without touching its module."""
    if teacher.onnx is not None:
        return teacher.onnx.logits(x)
    return torch.cat([teacher.module(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def teacher_params(teacher: LoadedModel) -> int:
    if teacher.onnx is not None:
        return sum(t.numel() for t in teacher.onnx.all_initializers().values())
    return count_params(teacher.module)


def hint_layers(teacher: LoadedModel) -> list[str]:
    """Teacher layers a hint can come from: every Linear/Conv except the last one (that one gives the logits)."""
    if teacher.module is None:
        return []
    names = [n for n, m in teacher.module.named_modules() if isinstance(m, WEIGHT_LAYERS)]
    return names[:-1]


@torch.no_grad()
def teacher_features(teacher: LoadedModel, layer: str, x: Tensor) -> Tensor:
    """Flattened output (N, D) of one teacher layer; the hook goes on a private copy, never on the shared module."""
    if layer not in hint_layers(teacher):
        choices = ", ".join(hint_layers(teacher)) or "none (a PyTorch teacher is needed)"
        raise InputError(f"hint layer {layer!r} is not a hidden layer of the teacher; choose one of {choices}")
    module = copy.deepcopy(teacher.module).eval()
    captured: list[Tensor] = []
    handle = dict(module.named_modules())[layer].register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        for i in range(0, len(x), 2048):
            module(x[i:i + 2048])
    finally:
        handle.remove()
    return torch.cat([c.flatten(1) for c in captured])


@dataclass(frozen=True)
class SoftTargets:
    """The teacher's class probabilities for one test image at T = 1 and at the chosen T ("dark knowledge")."""

    index: int
    label: int
    classes: tuple[str, ...]
    probs_t1: list[float]
    probs_t: list[float]
    temperature: float
    image: list[list[float]]  # (H, W) of the first channel, for a small picture


def soft_targets(teacher: LoadedModel, index: int, temperature: float) -> SoftTargets:
    """Teacher probabilities for test image `index` at T = 1 and T = `temperature`."""
    data = teacher.dataset
    if not 0 <= index < len(data.y_test):
        raise InputError(f"image index must be in [0, {len(data.y_test) - 1}], got {index}")
    if not 0 < temperature <= MAX_TEMPERATURE:
        raise InputError(f"temperature must be in (0, {MAX_TEMPERATURE:g}], got {temperature}")
    x = data.x_test[index:index + 1]
    logits = teacher_logits(teacher, x)[0]
    image = x[0].reshape(-1, x.shape[-1]) if x.ndim == 4 else x[0].reshape(1, -1)
    return SoftTargets(index, int(data.y_test[index]), data.classes, F.softmax(logits, 0).tolist(),
                       F.softmax(logits / temperature, 0).tolist(), float(temperature), image.tolist())
