"""Knowledge distillation: the KD loss, a read-only teacher, and the `distill` verb that yields progress."""

from compression.distillation.config import DistillConfig, parse_hidden
from compression.distillation.loss import MAX_TEMPERATURE, labeled_mask
from compression.distillation.student import build_student, check_student_size, student_layout
from compression.distillation.teacher import SoftTargets, hint_layers, soft_targets, teacher_params
from compression.distillation.trainer import DistillResult, DistillStep, distill, history_run, prepare_training

__all__ = [
    "build_student",
    "check_student_size",
    "distill",
    "DistillConfig",
    "DistillResult",
    "DistillStep",
    "hint_layers",
    "history_run",
    "labeled_mask",
    "MAX_TEMPERATURE",
    "parse_hidden",
    "prepare_training",
    "SoftTargets",
    "soft_targets",
    "student_layout",
    "teacher_params",
]
