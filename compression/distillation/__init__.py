"""Knowledge distillation: the KD loss, a read-only teacher, and the `distill` verb that yields progress."""

from compression.distillation.loss import labeled_mask
from compression.distillation.trainer import (
    MAX_TEMPERATURE,
    DistillConfig,
    build_student,
    check_student_size,
    distill,
    hint_layers,
    history_run,
    parse_hidden,
    prepare_training,
    soft_targets,
    student_layout,
    teacher_params,
)

__all__ = [
    "build_student",
    "check_student_size",
    "distill",
    "DistillConfig",
    "hint_layers",
    "history_run",
    "labeled_mask",
    "MAX_TEMPERATURE",
    "parse_hidden",
    "prepare_training",
    "soft_targets",
    "student_layout",
    "teacher_params",
]
