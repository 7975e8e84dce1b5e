"""Knowledge distillation (Hinton et al. 2015): a small MLP student imitates a teacher, paired with a scratch twin."""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from compression.core.errors import InputError
from compression.data import Dataset
from compression.distillation.loss import distillation_loss, labeled_mask, masked_cross_entropy, top1_agreement

# hint_layers and teacher_params are re-exported: pages and the CLI import the whole distillation API from here.
from compression.distillation.teacher import (  # noqa: F401
    OnnxForward,
    hint_layers,
    teacher_features,
    teacher_logits,
    teacher_params,
)
from compression.history.store import Run, run_from_result
from compression.metrics import (
    count_params,
    measure_latency,
    safetensors_bytes,
    saved_size_bytes,
    state_dict_of,
)
from compression.models.architectures import MLP
from compression.models.loading import LoadedModel
from compression.training import Step, TrainConfig, fit

MAX_TEMPERATURE = 100.0
MAX_HIDDEN = 4096


@dataclass(frozen=True)
class DistillConfig:
    """One distillation run; the paired scratch student uses the same student, seed, data and steps."""

    alpha: float = 0.5  # weight of the hard (true-label) term; 1 - alpha weighs the soft term
    temperature: float = 4.0
    student_hidden: tuple[int, ...] = (32,)  # (32,) on digits is the 64-32-10 student
    labeled_fraction: float = 1.0  # fraction of training images whose true label the students may see
    epochs: int = 20
    seed: int = 0
    lr: float = 1e-2
    batch_size: int = 64
    hint_layer: str | None = None  # teacher module whose output the student's last hidden layer should predict
    hint_weight: float = 1.0

    def __post_init__(self):
        if not (isinstance(self.alpha, (int, float)) and 0.0 <= self.alpha <= 1.0):
            raise InputError(f"alpha must be in [0, 1], got {self.alpha}")
        if not (isinstance(self.temperature, (int, float)) and 0.0 < self.temperature <= MAX_TEMPERATURE):
            raise InputError(f"temperature must be in (0, {MAX_TEMPERATURE:g}], got {self.temperature}")
        hidden = tuple(self.student_hidden)
        if not hidden or any(not isinstance(h, int) or not 1 <= h <= MAX_HIDDEN for h in hidden):
            raise InputError(f"student hidden sizes must be 1 to {MAX_HIDDEN} units per layer, "
                             f"got {self.student_hidden}")
        object.__setattr__(self, "student_hidden", hidden)  # a list from JSON becomes a hashable tuple
        if not 0.0 < self.labeled_fraction <= 1.0:
            raise InputError(f"labeled fraction must be in (0, 1], got {self.labeled_fraction}")
        if not 1 <= self.epochs <= 1000:
            raise InputError(f"epochs must be in [1, 1000], got {self.epochs}")
        if self.seed < 0:
            raise InputError(f"seed must be >= 0, got {self.seed}")
        if self.hint_weight < 0:
            raise InputError(f"hint weight must be >= 0, got {self.hint_weight}")
        TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, seed=self.seed)  # same checks

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, seed=self.seed)

    def to_dict(self) -> dict:
        return {**asdict(self), "student_hidden": list(self.student_hidden)}


def prepare_training() -> None:
    """Import what torch.optim imports lazily on first use (torch._dynamo, seconds) before a live run, not during it."""
    import torch._dynamo  # noqa: F401


# ---- the student ---------------------------------------------------------------------------------------------------

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
    try:
        with torch.no_grad():
            out = student.eval()(data.x_test[:2])
    except RuntimeError as exc:
        raise InputError(f"the student cannot read the teacher's inputs of shape {data.input_shape}: "
                         f"{str(exc).splitlines()[0]}") from exc
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
        out = {k: v for k, v in asdict(self).items() if k not in ("student", "scratch", "config")}
        return {**out, "config": self.config.to_dict(), "gain": self.gain}


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
    return DistillResult(
        config=config, teacher_name=teacher.name,
        student_accuracy=accuracy(s_test), scratch_accuracy=accuracy(b_test), teacher_accuracy=accuracy(t_test),
        agreement=top1_agreement(s_test, t_test), scratch_agreement=top1_agreement(b_test, t_test),
        student_params=count_params(student), teacher_params=teacher_params(teacher),
        student_size_bytes=saved_size_bytes(student),
        teacher_size_bytes=teacher.file_size_bytes(),
        student_latency_ms=measure_latency(student, example).median_ms,
        teacher_latency_ms=measure_latency(timed_teacher, example).median_ms,
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


def parse_hidden(text: str) -> tuple[int, ...]:
    """'32' or '64,32' into hidden sizes ('32' on digits is the 64-32-10 student)."""
    try:
        sizes = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError as exc:
        raise InputError(f"student hidden sizes must be integers like 32 or 64,32, got {text!r}") from exc
    if not sizes:
        raise InputError("student hidden sizes are empty; give e.g. 32 or 64,32")
    return sizes

