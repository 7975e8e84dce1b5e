"""Knowledge distillation (Hinton et al. 2015): a small MLP student imitates a teacher, paired with a scratch twin."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from compression.core.errors import InputError
from compression.distillation.config import DistillConfig
from compression.distillation.loss import (
    distillation_loss,
    labeled_mask,
    masked_cross_entropy,
    top1_agreement,
)
from compression.distillation.student import HintedStudent, build_student, check_pair, seeded_init
from compression.distillation.teacher import (
    OnnxForward,
    teacher_features,
    teacher_logits,
    teacher_params,
)
from compression.history.store import Run, run_from_result
from compression.metrics import (
    count_params,
    latency_method,
    measure_latency,
    safetensors_bytes,
    saved_size_bytes,
    state_dict_of,
)
from compression.models.loading import LoadedModel
from compression.training import Step, fit


def prepare_training() -> None:
    """Import what torch.optim imports lazily on first use (torch._dynamo, seconds) before a live run, not during it."""
    import torch._dynamo  # noqa: F401  # lazy on purpose: this function exists to pay that import up front


# ---- the verb --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DistillStep:
    """Progress of a paired run: the distilled student's step and its scratch twin's step at the same point."""

    student: Step
    scratch: Step

    @property
    def fraction(self) -> float:
        return self.student.fraction

    def to_row(self) -> dict:
        """Plain numbers for the charts."""
        return {"epoch": self.student.epoch, "step": self.student.step, "loss": self.student.loss,
                "hard": self.student.parts.get("hard"), "soft": self.student.parts.get("soft"),
                "hint": self.student.parts.get("hint"), "scratch_loss": self.scratch.loss,
                "student_accuracy": self.student.test_accuracy, "scratch_accuracy": self.scratch.test_accuracy,
                "elapsed_s": self.student.elapsed_s}


@dataclass(frozen=True, eq=False)
class DistillResult:
    """What a finished run measured; `student` and `scratch` are the trained models (not in to_dict)."""

    config: DistillConfig
    teacher_name: str
    student_accuracy: float
    scratch_accuracy: float
    teacher_accuracy: float
    agreement: float  # top-1 agreement of student and teacher on the test images
    scratch_agreement: float
    student_params: int
    teacher_params: int
    student_size_bytes: int
    teacher_size_bytes: int
    student_latency_ms: float
    teacher_latency_ms: float
    latency_method: Mapping[str, str | int]  # statistic, batch size and threads of both latencies
    labeled_images: int
    train_images: int
    steps: int
    elapsed_s: float
    student: nn.Module = field(repr=False)
    scratch: nn.Module = field(repr=False)

    @property
    def gain(self) -> float:
        """Accuracy points (as a fraction) the teacher's soft targets added over the scratch twin."""
        return self.student_accuracy - self.scratch_accuracy

    def to_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k not in ("student", "scratch", "config", "latency_method")}
        return {**out, **self.latency_method, "config": self.config.to_dict(), "gain": self.gain}


def distill(teacher: LoadedModel, config: DistillConfig) -> Iterator[DistillStep]:
    """Train a distilled student and its scratch twin in lockstep, yielding both; returns a DistillResult."""
    data = teacher.dataset
    if not data.has_train:
        raise InputError(f"the teacher's data ({data.name}) has no training split: distillation needs training "
                         "images (use a zoo model or weights for a zoo architecture)")
    t_train = teacher_logits(teacher, data.x_train)  # (N, C), once: the teacher never runs during training
    student = build_student(config, data)
    check_pair(teacher, student, t_train)
    scratch = copy.deepcopy(student)  # same init: the only difference is what each one learns from
    labeled = labeled_mask(len(data.y_train), config.labeled_fraction, config.seed)

    trained: nn.Module = student
    hint_target = None
    if config.hint_layer:
        hint_target = teacher_features(teacher, config.hint_layer, data.x_train)  # (N, D)
        trained = HintedStudent(student, hint_target.shape[1])
        seeded_init(trained.projection, torch.Generator().manual_seed(config.seed + 1))

    def kd_objective(logits: Tensor, labels: Tensor, index: Tensor):
        kd = distillation_loss(logits, t_train[index], labels, config.alpha, config.temperature, labeled[index])
        parts = {"hard": kd.hard.item(), "soft": kd.soft.item()}
        total = kd.total
        if hint_target is not None:
            hint = config.hint_weight * F.mse_loss(trained.projection(trained.features), hint_target[index])
            parts["hint"] = hint.item()
            total = total + hint
        return total, parts

    def scratch_objective(logits: Tensor, labels: Tensor, index: Tensor):
        loss = masked_cross_entropy(logits, labels, labeled[index])
        return loss, {"hard": loss.item()}

    train = config.train_config()
    runs = (fit(trained, data, train, kd_objective), fit(scratch, data, train, scratch_objective))
    last = None
    try:
        for s_step, b_step in zip(*runs):
            last = DistillStep(s_step, b_step)
            yield last
    finally:
        for run in runs:
            run.close()
    return measure_result(teacher, config, student, scratch, labeled, last)


def measure_result(teacher: LoadedModel, config: DistillConfig, student: nn.Module, scratch: nn.Module,
                   labeled: Tensor, last: DistillStep | None) -> DistillResult:
    """Accuracy, agreement, size and latency of the trained pair against the teacher, all measured now."""
    data = teacher.dataset
    t_test = teacher_logits(teacher, data.x_test)
    with torch.no_grad():
        s_test, b_test = student.eval()(data.x_test), scratch.eval()(data.x_test)
    accuracy = lambda logits: float((logits.argmax(1) == data.y_test).float().mean())  # noqa: E731
    example = data.x_test[:1]
    # A private copy is timed, so the shared teacher module is never switched or hooked.
    timed_teacher = OnnxForward(teacher) if teacher.onnx is not None else copy.deepcopy(teacher.module)
    student_latency, teacher_latency = measure_latency(student, example), measure_latency(timed_teacher, example)
    return DistillResult(
        config=config, teacher_name=teacher.name,
        student_accuracy=accuracy(s_test), scratch_accuracy=accuracy(b_test), teacher_accuracy=accuracy(t_test),
        agreement=top1_agreement(s_test, t_test), scratch_agreement=top1_agreement(b_test, t_test),
        student_params=count_params(student), teacher_params=teacher_params(teacher),
        student_size_bytes=saved_size_bytes(student),
        teacher_size_bytes=teacher.file_size_bytes(),
        student_latency_ms=student_latency.median_ms, teacher_latency_ms=teacher_latency.median_ms,
        latency_method=latency_method(student_latency, "median"),
        labeled_images=int(labeled.sum()), train_images=len(labeled),
        steps=last.student.step if last else 0, elapsed_s=last.student.elapsed_s if last else 0.0,
        student=student, scratch=scratch,
    )


def history_run(result: DistillResult, rows: Sequence[dict], label: str = "") -> Run:
    """The run as the history (the Compare page) keeps it: metrics, both curves and the student's weights."""
    curves = {who: [{"epoch": r["epoch"], "loss": r[loss], "test_accuracy": r[f"{who}_accuracy"]} for r in rows]
              for who, loss in (("student", "loss"), ("scratch", "scratch_loss"))}
    data = {**result.to_dict(), "accuracy": result.student_accuracy, "size_bytes": result.student_size_bytes,
            "latency_ms": result.student_latency_ms, "curves": curves}
    hidden = "-".join(map(str, result.config.student_hidden))
    label = label or f"student {hidden} α={result.config.alpha:g} T={result.config.temperature:g}"
    return dataclasses.replace(run_from_result("distill", result.teacher_name, data, label=label),
                               file_name="student.safetensors", file=safetensors_bytes(state_dict_of(result.student)))
