"""Deep Compression and beyond: prune (+ fine-tune) -> distill -> quantize (weight sharing) -> encode a .clab file."""

from __future__ import annotations

import copy
import time
from collections.abc import Generator, Mapping
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from compression.formats import clab as codec
from compression.data import Dataset
from compression.core.errors import InputError
from compression.models.loading import LoadedModel, prunable_weights
from compression.metrics import count_nonzero, count_params, measure_latency, state_dict_of, torch_save_bytes
from compression.models.architectures import get_architecture, student_architecture
from compression.core.progress import Drive
from compression.models.safe_load import build_and_load
from compression.training import Step, TrainConfig, fit
from compression.pipeline.weight_sharing import SharedTensor, refit_codebooks, share_weights

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
    bits: int = 4  # quantize: 2**bits shared values per layer (k-means)
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
        if not 1 <= self.bits <= 8:
            raise InputError(f"bits must be in 1..8 for weight sharing, got {self.bits}")
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
                "latency_ms": self.latency_ms, "baseline_latency_ms": self.baseline_latency_ms}


def run_pipeline(model: LoadedModel, config: PipelineConfig) -> Generator[PipelineProgress, None, PipelineResult]:
    """Run the steps on a copy of `model` (never changed), yielding progress; returns the measured result."""
    if model.module is None or model.arch is None:
        raise InputError("the pipeline needs a zoo architecture (a zoo model or weights uploaded for one)")
    if not model.dataset.has_train:
        raise InputError("the pipeline fine-tunes, so it needs the training split of a built-in dataset")
    data = model.dataset
    example = data.x_test[:1]
    base_eval = model.evaluate()
    stages, curves = [], {}
    current = LoadedModel(model.name, model.source, data, module=copy.deepcopy(model.module), arch=model.arch)
    masks: dict[str, Tensor] = {}
    shared: dict[str, SharedTensor] = {}
    file = None
    for index, stage in enumerate(config.steps):
        start = time.perf_counter()
        yield PipelineProgress(stage, index, len(config.steps))
        if stage == "prune":
            from compression.pruning.prune import global_magnitude_masks

            masks = global_magnitude_masks(prunable_weights(current.module), config.sparsity)
            _apply_masks(current.module, masks)
            steps = yield from _train(current.module, data, TrainConfig(
                epochs=config.finetune_epochs, lr=config.finetune_lr, seed=config.seed),
                lambda m, masks=masks: _apply_masks(m, masks), stage, index, len(config.steps))
            curves["prune"] = steps
        elif stage == "distill":
            from compression.distillation.distill import DistillConfig, distill

            run = Drive(distill(current, DistillConfig(alpha=config.alpha, temperature=config.temperature,
                                                 student_hidden=config.student_hidden,
                                                 epochs=max(1, config.distill_epochs), seed=config.seed)))
            rows = []
            for step in run:
                rows.append(step.to_row())
                yield PipelineProgress(stage, index, len(config.steps), step.student)
            result = run.result
            current = LoadedModel(f"{model.name} → student", model.source, data, module=result.student.eval(),
                                  arch=student_architecture(data.name))
            masks = {}
            curves["distill"] = rows
        elif stage == "quantize":
            shared = {name: share_weights(w, config.bits) for name, w in prunable_weights(current.module).items()}
            _apply_shared(current.module, shared)

            def project(m: nn.Module) -> None:
                nonlocal shared
                shared = refit_codebooks(prunable_weights(m), shared)
                _apply_shared(m, shared)

            curves["quantize"] = yield from _train(current.module, data, TrainConfig(
                epochs=config.quant_epochs, lr=config.finetune_lr / 2, seed=config.seed + 1), project,
                stage, index, len(config.steps))
        else:  # encode, then measure what decoding the file gives back
            file = codec.encode(state_dict_of(current.module), shared, current.arch,
                                {"model": model.name, "steps": list(config.steps)}, config.index_bits)
            current = LoadedModel(f"{model.name} (.clab)", model.source, data, module=load_clab(file).module,
                                  arch=current.arch)
        evaluation = current.evaluate()
        size = len(file) if stage == "encode" else len(torch_save_bytes(state_dict_of(current.module)))
        stages.append(StageResult(stage, evaluation.accuracy, size, count_params(current.module),
                                  count_nonzero(current.module), time.perf_counter() - start))
    return PipelineResult(
        config=config, model_name=model.name, stages=tuple(stages), baseline_accuracy=base_eval.accuracy,
        baseline_size_bytes=len(torch_save_bytes(state_dict_of(model.module))),
        accuracy=stages[-1].accuracy, size_bytes=stages[-1].size_bytes,
        latency_ms=measure_latency(current.module, example).median_ms,
        baseline_latency_ms=measure_latency(model.module, example).median_ms,
        file=file, model=current, curves=curves)


def _train(module, data: Dataset, train: TrainConfig, after_step, stage: str, index: int, stages: int):
    rows = []
    if train.epochs:
        for step in fit(module, data, train, after_step=after_step):
            rows.append({"epoch": step.epoch, "loss": step.loss, "test_accuracy": step.test_accuracy})
            yield PipelineProgress(stage, index, stages, step)
    return rows


@torch.no_grad()
def _apply_masks(module: nn.Module, masks: Mapping[str, Tensor]) -> None:
    params = dict(module.named_parameters())
    for name, mask in masks.items():
        params[name].mul_(mask)


@torch.no_grad()
def _apply_shared(module: nn.Module, shared: Mapping[str, SharedTensor]) -> None:
    params = dict(module.named_parameters())
    for name, st in shared.items():
        params[name].copy_(st.dense())


def load_clab(data: bytes, name: str = "model.clab") -> LoadedModel:
    """Decode a .clab file into a working model of its architecture, with that architecture's dataset."""
    from compression.data import load_dataset

    decoded = codec.decode(data)
    arch = get_architecture(decoded.arch)
    module = build_and_load(arch.from_state_dict, decoded.state, name)
    return LoadedModel(name, "upload", load_dataset(arch.dataset), module=module, arch=decoded.arch)
