"""The teacher side of distillation, read-only: its logits, size, hint features; never its shared module."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from compression.core.errors import InputError
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
