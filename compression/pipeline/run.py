"""Deep Compression and beyond: prune (+ fine-tune) -> distill -> quantize (weight sharing) -> encode a .clab file."""

from __future__ import annotations

import copy
import time
from collections.abc import Generator, Mapping
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from compression.core.errors import InputError
from compression.core.progress import Drive
from compression.data import Dataset
from compression.distillation import DistillConfig, distill
from compression.formats import clab
from compression.formats.clab import SharedTensor
from compression.metrics import (
    count_nonzero,
    count_params,
    latency_in_turns,
    latency_method,
    saved_size_bytes,
    state_dict_of,
)
from compression.models.architectures import student_architecture
from compression.models.loading import LoadedModel, load_clab, prunable_weights
from compression.pipeline.weight_sharing import refit_codebooks, share_weights
from compression.pruning import global_magnitude_masks, mask_parameters_
from compression.training import Step, TrainConfig, fit

STEPS = ("prune", "distill", "quantize", "encode")


@dataclass(frozen=True)
class PipelineConfig:
    """The steps to run, in order, and each step's settings."""

    steps: tuple[str, ...] = ("prune", "quantize", "encode")
    sparsity: float = 0.9  # prune: global magnitude sparsity over Linear/Conv weights
    finetune_epochs: int = 100  # prune: masked fine-tuning after one-shot pruning
    finetune_lr: float = 3e-3
    student_hidden: tuple[int, ...] = (32,)  # distill: the student MLP's hidden sizes
    alpha: float = 0.5
    temperature: float = 4.0
    distill_epochs: int = 30
    codebook_bits: int = 4  # quantize (weight sharing): 2**codebook_bits shared values per layer (k-means)
    quant_epochs: int = 10  # quantize: trained quantization (codes fixed, centroids follow the gradients)
    index_bits: int = 5  # encode: width of the relative sparse index
    seed: int = 0

    def __post_init__(self):
        steps = tuple(s.strip() for s in (self.steps.split(",") if isinstance(self.steps, str) else self.steps))
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "student_hidden", tuple(self.student_hidden))
        unknown = [s for s in steps if s not in STEPS]
        if not steps or unknown:
            raise InputError(f"steps must be some of {', '.join(STEPS)} in that order; got {', '.join(steps) or 'none'}")
        if list(steps) != sorted(steps, key=STEPS.index) or len(set(steps)) != len(steps):
            raise InputError(f"steps run in the order {' -> '.join(STEPS)}, each at most once; got {', '.join(steps)}")
        if "encode" in steps and "quantize" not in steps:
            raise InputError("encode stores shared-weight codes: add the quantize step before it")
        if not 0.0 <= self.sparsity < 1.0:
            raise InputError(f"sparsity must be in [0, 1), got {self.sparsity}")
        if not 1 <= self.codebook_bits <= 8:
            raise InputError(f"codebook bits must be in 1..8 for weight sharing, got {self.codebook_bits}")
        if not 1 <= self.index_bits <= 8:
            raise InputError(f"index_bits must be in 1..8, got {self.index_bits}")
        for name in ("finetune_epochs", "distill_epochs", "quant_epochs"):
            if not 0 <= getattr(self, name) <= 1000:
                raise InputError(f"{name} must be in [0, 1000], got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return {**asdict(self), "steps": list(self.steps), "student_hidden": list(self.student_hidden)}


@dataclass(frozen=True)
class StageResult:
    """A step's outcome, measured on held-out data; size is the file that step would hand over."""

    name: str
    accuracy: float
    size_bytes: int
    params: int
    nonzero_params: int
    seconds: float


@dataclass(frozen=True)
class PipelineProgress:
    """Where the pipeline is: which step, and that step's training progress (if it trains)."""

    stage: str
    stage_index: int
    stages: int
    step: Step | None = None

    @property
    def fraction(self) -> float:
        inner = self.step.fraction if self.step is not None else 0.0
        return (self.stage_index + inner) / self.stages


@dataclass(frozen=True, eq=False)
class PipelineResult:
    config: PipelineConfig
    model_name: str
    stages: tuple[StageResult, ...]
    baseline_accuracy: float
    baseline_size_bytes: int  # the fp32 torch.save file of the input model
    accuracy: float  # measured on the model decoded from `file` (or the last model, without encode)
    size_bytes: int  # bytes of `file` (or the last step's torch.save file, without encode)
    latency_ms: float
    baseline_latency_ms: float
    latency_method: Mapping[str, str | int]  # statistic, batch size and threads of both latencies
    file: bytes | None
    model: LoadedModel = field(repr=False)
    curves: Mapping[str, list] = field(default_factory=dict, repr=False)

    @property
    def compression_ratio(self) -> float:
        return self.baseline_size_bytes / self.size_bytes if self.size_bytes else 0.0

    def to_dict(self) -> dict:
        return {"config": self.config.to_dict(), "model": self.model_name,
                "stages": [asdict(s) for s in self.stages], "accuracy": self.accuracy,
                "baseline_accuracy": self.baseline_accuracy, "size_bytes": self.size_bytes,
                "baseline_size_bytes": self.baseline_size_bytes, "compression_ratio": self.compression_ratio,
                "latency_ms": self.latency_ms, "baseline_latency_ms": self.baseline_latency_ms,
                **self.latency_method}


@dataclass
class _Work:
    """What the steps hand each other: the model so far, its shared weights and the encoded file."""

    model: LoadedModel
    shared: dict[str, SharedTensor] = field(default_factory=dict)
    file: bytes | None = None


def run_pipeline(model: LoadedModel, config: PipelineConfig) -> Generator[PipelineProgress, None, PipelineResult]:
    """Run the steps on a copy of `model` (never changed), yielding progress; returns the measured result."""
    if model.module is None or model.arch is None:
        raise InputError("the pipeline needs a zoo architecture (a zoo model or weights uploaded for one)")
    if not model.dataset.has_train:
        raise InputError("the pipeline fine-tunes, so it needs the training split of a built-in dataset")
    base_eval = model.evaluate()
    stages, curves = [], {}
    work = _Work(LoadedModel(model.name, model.source, model.dataset, module=copy.deepcopy(model.module),
                             arch=model.arch))
    for index, stage in enumerate(config.steps):
        start = time.perf_counter()
        progress = _Progress(stage, index, len(config.steps))
        yield progress()
        if stage == "encode":
            _encode(work, config, model.name)
        else:
            curves[stage] = yield from _TRAINING_STEPS[stage](work, config, progress, model.name)
        current = work.model.module
        size = len(work.file) if stage == "encode" else saved_size_bytes(current)
        stages.append(StageResult(stage, work.model.evaluate().accuracy, size, count_params(current),
                                  count_nonzero(current), time.perf_counter() - start))
    example = model.dataset.x_test[:1]
    latency, baseline_latency = latency_in_turns([work.model.module, model.module], example, repeats=30, warmup=5)
    return PipelineResult(
        config=config, model_name=model.name, stages=tuple(stages), baseline_accuracy=base_eval.accuracy,
        baseline_size_bytes=model.file_size_bytes(), accuracy=stages[-1].accuracy, size_bytes=stages[-1].size_bytes,
        latency_ms=latency.median_ms, baseline_latency_ms=baseline_latency.median_ms,
        latency_method=latency_method(latency, "median"),
        file=work.file, model=work.model, curves=curves)


@dataclass(frozen=True)
class _Progress:
    stage: str
    index: int
    stages: int

    def __call__(self, step=None) -> PipelineProgress:
        return PipelineProgress(self.stage, self.index, self.stages, step)


def _prune(work: _Work, config: PipelineConfig, progress: _Progress, name: str):
    module = work.model.module
    masks = global_magnitude_masks(prunable_weights(module), config.sparsity)
    mask_parameters_(module, masks)
    train = TrainConfig(epochs=config.finetune_epochs, lr=config.finetune_lr, seed=config.seed)
    return (yield from _train(module, work.model.dataset, train, lambda m: mask_parameters_(m, masks), progress))


def _distill(work: _Work, config: PipelineConfig, progress: _Progress, name: str):
    run = Drive(distill(work.model, DistillConfig(alpha=config.alpha, temperature=config.temperature,
                                                  student_hidden=config.student_hidden,
                                                  epochs=max(1, config.distill_epochs), seed=config.seed)))
    rows = []
    for step in run:
        rows.append(step.to_row())
        yield progress(step.student)
    data = work.model.dataset
    work.model = LoadedModel(f"{name} → student", work.model.source, data, module=run.result.student.eval(),
                             arch=student_architecture(data.name))
    return rows


def _share(work: _Work, config: PipelineConfig, progress: _Progress, name: str):
    module = work.model.module
    work.shared = {k: share_weights(w, config.codebook_bits) for k, w in prunable_weights(module).items()}
    _apply_shared(module, work.shared)

    def project(m: nn.Module) -> None:  # retrain the centroids, then snap every weight back onto them
        work.shared = refit_codebooks(prunable_weights(m), work.shared)
        _apply_shared(m, work.shared)

    train = TrainConfig(epochs=config.quant_epochs, lr=config.finetune_lr / 2, seed=config.seed + 1)
    return (yield from _train(module, work.model.dataset, train, project, progress))


def _encode(work: _Work, config: PipelineConfig, name: str) -> None:
    """Write the .clab file, then carry on with what decoding it gives back (so every figure is of the file)."""
    current = work.model
    work.file = clab.encode(state_dict_of(current.module), work.shared, current.arch,
                            {"model": name, "steps": list(config.steps)}, config.index_bits)
    work.model = LoadedModel(f"{name} (.clab)", current.source, current.dataset,
                             module=load_clab(work.file).module, arch=current.arch)


_TRAINING_STEPS = {"prune": _prune, "distill": _distill, "quantize": _share}


def _train(module, data: Dataset, train: TrainConfig, after_step, progress: _Progress):
    rows = []
    if train.epochs:
        for step in fit(module, data, train, after_step=after_step):
            rows.append({"epoch": step.epoch, "loss": step.loss, "test_accuracy": step.test_accuracy})
            yield progress(step)
    return rows


@torch.no_grad()
def _apply_shared(module: nn.Module, shared: Mapping[str, SharedTensor]) -> None:
    params = dict(module.named_parameters())
    for name, st in shared.items():
        params[name].copy_(st.dense())
