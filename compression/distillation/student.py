"""The student: an MLP built from a DistillConfig, seeded like its scratch twin, checked against the teacher."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from compression.core.errors import InputError
from compression.data import Dataset
from compression.distillation.config import DistillConfig
from compression.distillation.teacher import teacher_params
from compression.metrics import count_params
from compression.models.architectures import MLP
from compression.models.loading import LoadedModel, try_forward


def build_student(config: DistillConfig, data: Dataset) -> MLP:
    """An MLP sized to the data, initialized from the run's seed (the scratch twin is a copy of it)."""
    student = MLP(math.prod(data.input_shape), config.student_hidden, data.num_classes)
    seeded_init(student, torch.Generator().manual_seed(config.seed))
    return student


@torch.no_grad()
def seeded_init(model: nn.Module, generator: torch.Generator) -> None:
    """nn.Linear's default init drawn from a private generator: other threads using torch's global RNG
    (other sessions of the app) cannot change which student a seed gives."""
    for layer in model.modules():
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            bound = 1 / math.sqrt(layer.in_features)
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


def student_layout(config: DistillConfig, data: Dataset) -> str:
    """The student's layer widths as text, e.g. '64-32-10' on digits."""
    return "-".join(str(d) for d in (math.prod(data.input_shape), *config.student_hidden, data.num_classes))


def check_pair(teacher: LoadedModel, student: nn.Module, teacher_train_logits: Tensor) -> None:
    """Refuse a student that cannot stand in for the teacher: other inputs, other classes, or more parameters."""
    data = teacher.dataset
    if teacher_train_logits.ndim != 2 or teacher_train_logits.shape[1] != data.num_classes:
        raise InputError(f"the teacher gives {tuple(teacher_train_logits.shape[1:])} outputs per image but "
                         f"{data.name} has {data.num_classes} classes")
    out = try_forward(student, data, "the student")
    if out.shape[1] != teacher_train_logits.shape[1]:
        raise InputError(f"the student has {out.shape[1]} outputs but the teacher has "
                         f"{teacher_train_logits.shape[1]} classes")
    check_student_size(student, teacher)


def check_student_size(student: nn.Module, teacher: LoadedModel) -> None:
    """Refuse a student with more parameters than its teacher: distillation is meant to compress."""
    s_params, t_params = count_params(student), teacher_params(teacher)
    if s_params > t_params:
        raise InputError(f"the student ({s_params:,} parameters) is bigger than the teacher ({t_params:,}): "
                         "distillation compresses, so choose fewer hidden units")


class HintedStudent(nn.Module):
    """The student plus a learned projection from its last hidden layer to the teacher's hint layer."""

    def __init__(self, student: MLP, teacher_dim: int):
        super().__init__()
        self.student = student
        self.projection = nn.Linear(student.hidden[-1], teacher_dim)
        self.features: Tensor | None = None  # (B, hidden[-1]) of the last forward, read by the objective

    def forward(self, x: Tensor) -> Tensor:
        *body, head = self.student  # everything up to the output layer (ends in a ReLU), then the output layer
        for layer in body:
            x = layer(x)
        self.features = x
        return head(x)
