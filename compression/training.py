"""The shared training loop: a generator of progress steps, reused by zoo training, fine-tuning, QAT and KD."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from compression.core.errors import InputError
from compression.data import Dataset
from compression.metrics import evaluate

# objective(logits, labels, indices into the training set) -> (loss, named parts for the charts)
Objective = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Mapping[str, float]]]


@dataclass(frozen=True)
class TrainConfig:
    """Optimizer settings for one run; Adam with optional cosine decay."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    cosine: bool = True
    reports_per_epoch: int = 4

    def __post_init__(self):
        if not 0 <= self.epochs <= 10_000:
            raise InputError(f"epochs must be in [0, 10000], got {self.epochs}")
        if self.batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0 < self.lr < 10:
            raise InputError(f"lr must be in (0, 10), got {self.lr}")
        if self.weight_decay < 0:
            raise InputError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.reports_per_epoch < 1:
            raise InputError(f"reports_per_epoch must be >= 1, got {self.reports_per_epoch}")


@dataclass(frozen=True)
class Step:
    """Progress of a run: the mean loss since the last report; test metrics at the end of each epoch."""

    epoch: float
    step: int
    total_steps: int
    loss: float
    parts: Mapping[str, float] = field(default_factory=dict)
    test_accuracy: float | None = None
    test_loss: float | None = None
    elapsed_s: float = 0.0

    @property
    def fraction(self) -> float:
        return self.step / self.total_steps if self.total_steps else 1.0


def cross_entropy(logits: Tensor, labels: Tensor, _index: Tensor) -> tuple[Tensor, Mapping[str, float]]:
    """Plain supervised loss, the default objective."""
    loss = F.cross_entropy(logits, labels)
    return loss, {"ce": loss.item()}


def fit(model: nn.Module, data: Dataset, config: TrainConfig, objective: Objective = cross_entropy,
        after_step: Callable[[nn.Module], None] | None = None) -> Iterator[Step]:
    """Train `model` in place on `data`'s training split, yielding Steps; stop iterating to cancel.

    `after_step` runs after every optimizer step (e.g. to re-apply pruning masks).
    """
    if not data.has_train:
        raise InputError(f"dataset {data.name!r} has no training split; training needs one")
    x, y = data.x_train, data.y_train
    n = len(y)
    steps_per_epoch = max(1, -(-n // config.batch_size))
    total = steps_per_epoch * config.epochs
    report_every = max(1, steps_per_epoch // config.reports_per_epoch)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer, scheduler = _optimizer(model, config, total)
    start = time.perf_counter()
    step, window = 0, _Window()
    try:
        for epoch in range(config.epochs):
            model.train()
            order = torch.randperm(n, generator=generator)
            for b in range(steps_per_epoch):
                index = order[b * config.batch_size:(b + 1) * config.batch_size]
                loss, parts = objective(model(x[index]), y[index], index)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                if after_step is not None:
                    after_step(model)
                step += 1
                window.add(loss.item(), parts)
                last = b == steps_per_epoch - 1
                if step % report_every == 0 or last:
                    test = evaluate(model, data.x_test, data.y_test) if last else None  # evaluate() sets eval mode
                    model.train()
                    loss_mean, parts_mean = window.take()
                    yield Step(epoch=epoch + (b + 1) / steps_per_epoch, step=step, total_steps=total,
                               loss=loss_mean, parts=parts_mean, test_accuracy=test.accuracy if test else None,
                               test_loss=test.loss if test else None, elapsed_s=time.perf_counter() - start)
    finally:
        model.eval()


def _optimizer(model: nn.Module, config: TrainConfig, total_steps: int):
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, total_steps)) if config.cosine else None
    return optimizer, scheduler


class _Window:
    """Mean loss (and its parts) over the steps since the last report."""

    def __init__(self):
        self.loss, self.parts, self.count = 0.0, {}, 0

    def add(self, loss: float, parts: dict[str, float]) -> None:
        self.loss += loss
        for k, v in parts.items():
            self.parts[k] = self.parts.get(k, 0.0) + v
        self.count += 1

    def take(self) -> tuple[float, dict[str, float]]:
        mean = (self.loss / self.count, {k: v / self.count for k, v in self.parts.items()})
        self.loss, self.parts, self.count = 0.0, {}, 0
        return mean
