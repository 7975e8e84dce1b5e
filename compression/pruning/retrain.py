"""Pruning with training: one-shot + masked fine-tune, and gradual pruning on the Zhu & Gupta cubic schedule."""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import Tensor, nn

from compression.core.errors import InputError
from compression.models.loading import LoadedModel, prunable_weights
from compression.models.workbench import with_weights
from compression.pruning.apply import prune
from compression.pruning.config import PruneConfig
from compression.pruning.masks import compute_masks, mask_parameters_
from compression.training import Step, TrainConfig, cross_entropy, fit


@dataclass(frozen=True)
class FinetuneConfig:
    """Prune once, then train with the pruned weights held at zero."""

    prune: PruneConfig
    train: TrainConfig = TrainConfig(epochs=30, lr=1e-3)

    def to_dict(self) -> dict:
        return {"kind": "one-shot + fine-tune", "prune": self.prune.to_dict(), "train": asdict(self.train)}


@dataclass(frozen=True)
class GradualConfig:
    """Raise sparsity from `initial_amount` to prune.amount on the cubic schedule, then train at the final mask."""

    prune: PruneConfig  # magnitude with a target amount (the final sparsity s_f)
    train: TrainConfig = TrainConfig(epochs=30, lr=1e-3)
    initial_amount: float = 0.0  # s_i
    end_fraction: float = 0.6  # the schedule reaches s_f after this fraction of the steps
    interval_steps: int = 10  # Δt: steps between mask updates

    def __post_init__(self):
        if self.prune.method != "magnitude" or self.prune.amount is None or self.prune.nm is not None:
            raise InputError("gradual pruning needs magnitude pruning with a target sparsity")
        if not 0.0 <= self.initial_amount <= self.prune.amount:
            raise InputError(f"the initial sparsity must be in [0, {self.prune.amount}], got {self.initial_amount}")
        if not 0.0 < self.end_fraction <= 1.0:
            raise InputError(f"end_fraction must be in (0, 1], got {self.end_fraction}")
        if self.interval_steps < 1:
            raise InputError(f"interval_steps must be >= 1, got {self.interval_steps}")

    def to_dict(self) -> dict:
        return {"kind": "gradual", "prune": self.prune.to_dict(), "train": asdict(self.train),
                "initial_amount": self.initial_amount, "end_fraction": self.end_fraction,
                "interval_steps": self.interval_steps}


@dataclass(frozen=True, eq=False)
class FinetuneResult:
    """The trained pruned model and how it got there."""

    config: FinetuneConfig | GradualConfig
    model: LoadedModel
    steps: tuple[Step, ...] = field(repr=False)
    accuracy: float
    baseline_accuracy: float
    oneshot_accuracy: float | None  # right after one-shot pruning, before training (None for gradual)
    sparsity: float
    params: int
    nonzero_params: int

    @property
    def retention(self) -> float:
        """Accuracy as a fraction of the dense model's."""
        return self.accuracy / self.baseline_accuracy if self.baseline_accuracy else 0.0

    def to_dict(self) -> dict:
        return {"config": self.config.to_dict(), "accuracy": self.accuracy,
                "baseline_accuracy": self.baseline_accuracy, "oneshot_accuracy": self.oneshot_accuracy,
                "sparsity": self.sparsity, "params": self.params, "nonzero_params": self.nonzero_params,
                "retention": self.retention}


def cubic_sparsity(step: int, initial: float, final: float, start_step: int, n: int, interval: int) -> float:
    """Zhu & Gupta: s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n Δt))^3, held at s_i before t0 and s_f after."""
    if n <= 0 or step >= start_step + n * interval:
        return final
    if step <= start_step:
        return initial
    return final + (initial - final) * (1.0 - (step - start_step) / (n * interval)) ** 3


def _require_trainable(model: LoadedModel) -> None:
    if model.module is None:
        raise InputError("fine-tuning needs a PyTorch model (ONNX graphs have no gradients here)")
    if not model.dataset.has_train:
        raise InputError(f"fine-tuning needs training data; {model.dataset.name!r} has only a test split")


def finetune(model: LoadedModel, config: FinetuneConfig,
             calibration: Tensor | None = None) -> Generator[Step, None, FinetuneResult]:
    """One-shot prune a copy of `model` (Wanda and SparseGPT on `calibration`), then train it with pruned weights
    kept at zero; yields Steps."""
    _require_trainable(model)
    oneshot = prune(model, config.prune, calibration)
    module = oneshot.model.module  # our own copy: training it leaves `model` untouched
    # structured pruning removed the units outright: nothing to hold at zero
    masks = {} if config.prune.method == "structured" else dict(oneshot.masks)
    steps = []
    for step in fit(module, model.dataset, config.train, after_step=lambda m: mask_parameters_(m, masks)):
        steps.append(step)
        yield step
    return _result(config, model, oneshot.model, steps, oneshot.baseline_accuracy, oneshot.accuracy)


def prune_gradually(model: LoadedModel, config: GradualConfig) -> Generator[Step, None, FinetuneResult]:
    """Train a copy of `model` while its sparsity follows the cubic schedule; yields Steps (parts hold sparsity)."""
    _require_trainable(model)

    trained = with_weights(model, {}, name=f"{model.name} (gradual)")
    module = trained.module
    steps_per_epoch = max(1, math.ceil(len(model.dataset.y_train) / config.train.batch_size))
    total = steps_per_epoch * config.train.epochs
    n = max(1, int(config.end_fraction * total) // config.interval_steps)
    state = {"t": 0, "amount": config.initial_amount, "masks": {}}

    def remask(m: nn.Module) -> None:
        t = state["t"]
        if t % config.interval_steps == 0 and t <= n * config.interval_steps:
            amount = cubic_sparsity(t, config.initial_amount, config.prune.amount, 0, n, config.interval_steps)
            state["amount"] = amount
            state["masks"] = compute_masks(prunable_weights(m), replace(config.prune, amount=amount))
        mask_parameters_(m, state["masks"])
        state["t"] = t + 1

    def objective(logits, labels, index):
        loss, parts = cross_entropy(logits, labels, index)
        return loss, {**parts, "sparsity": state["amount"]}

    remask(module)  # t = 0: start at s_i
    state["t"] = 0
    steps = []
    for step in fit(module, model.dataset, config.train, objective=objective, after_step=remask):
        steps.append(step)
        yield step
    final = compute_masks(prunable_weights(module), config.prune)  # make sure s_f holds even if cut short
    mask_parameters_(module, final)
    return _result(config, model, trained, steps, model.evaluate().accuracy, None)


def _result(config, model: LoadedModel, trained: LoadedModel, steps: list[Step], baseline: float,
            oneshot: float | None) -> FinetuneResult:
    module = trained.module.eval()
    weights = prunable_weights(module)
    base_total = sum(w.numel() for w in model.weights().values())
    nonzero_weights = sum(int(torch.count_nonzero(w)) for w in weights.values())
    return FinetuneResult(
        config=config, model=trained, steps=tuple(steps), accuracy=trained.evaluate().accuracy,
        baseline_accuracy=baseline, oneshot_accuracy=oneshot,
        sparsity=1.0 - nonzero_weights / base_total if base_total else 0.0,
        params=sum(p.numel() for p in module.parameters()),
        nonzero_params=sum(int(torch.count_nonzero(p)) for p in module.parameters()))

