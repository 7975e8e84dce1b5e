"""What a distillation run is asked to do: the validated DistillConfig and its text forms."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from compression.core.errors import InputError
from compression.distillation.loss import MAX_TEMPERATURE
from compression.training import TrainConfig

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


def parse_hidden(text: str) -> tuple[int, ...]:
    """'32' or '64,32' into hidden sizes ('32' on digits is the 64-32-10 student)."""
    try:
        sizes = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError as exc:
        raise InputError(f"student hidden sizes must be integers like 32 or 64,32, got {text!r}") from exc
    if not sizes:
        raise InputError("student hidden sizes are empty; give e.g. 32 or 64,32")
    return sizes
