"""Comparing runs: the Pareto frontier, and a budget search over sparsity x bits (x distillation)."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import asdict, dataclass

from compression.core.errors import InputError
from compression.core.progress import Drive
from compression.distillation import DistillConfig, distill
from compression.formats import clab
from compression.history.store import Run
from compression.metrics import latency_in_turns, state_dict_of
from compression.models.architectures import student_architecture
from compression.models.loading import LoadedModel, load_clab
from compression.pipeline.weight_sharing import share_weights
from compression.pruning import global_magnitude_masks


@dataclass(frozen=True)
class BudgetConfig:
    """Find the most accurate compressed model whose file (or latency) fits the budget."""

    budget: float  # bytes for "size", milliseconds for "latency"
    metric: str = "size"  # size | latency
    sparsities: tuple[float, ...] = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95)
    codebook_bits: tuple[int, ...] = (2, 3, 4, 6, 8)  # weight sharing: 2**b shared values per layer
    student_hidden: tuple[int, ...] = ()  # also try distilled students of these widths (empty: none)
    distill_epochs: int = 15

    def __post_init__(self):
        object.__setattr__(self, "sparsities", tuple(float(s) for s in self.sparsities))
        object.__setattr__(self, "codebook_bits", tuple(int(b) for b in self.codebook_bits))
        object.__setattr__(self, "student_hidden", tuple(int(h) for h in self.student_hidden))
        if self.metric not in ("size", "latency"):
            raise InputError(f"budget metric must be size or latency, got {self.metric!r}")
        if not self.budget > 0:
            raise InputError(f"the budget must be > 0, got {self.budget}")
        if not self.sparsities or not all(0 <= s < 1 for s in self.sparsities):
            raise InputError("sparsities must lie in [0, 1)")
        if not self.codebook_bits or not all(1 <= b <= 8 for b in self.codebook_bits):
            raise InputError("codebook bits must lie in 1..8")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BudgetPoint:
    """One candidate, measured after decoding its real .clab file."""

    label: str
    student_hidden: int | None
    sparsity: float
    codebook_bits: int
    accuracy: float
    size_bytes: int
    latency_ms: float  # its architecture's median at batch 1 (the decoded model runs dense)
    fits: bool
    latency_threads: int = 1


@dataclass(frozen=True)
class BudgetProgress:
    done: int
    total: int
    point: BudgetPoint | None = None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


def budget_search(model: LoadedModel, config: BudgetConfig) -> Generator[BudgetProgress, None, list[BudgetPoint]]:
    """Sweep one-shot prune x k-means bits (x distilled students), encoding and decoding each; no fine-tuning.

    A decoded .clab model runs dense, so its speed is its architecture's: each architecture (the model, each
    student) is timed once, all of them in turns, and every point of it carries that latency. Pruning and bits
    change accuracy and size, never the clock, so no point can win a latency budget on timer noise.
    """
    if model.module is None or model.arch is None:
        raise InputError("the budget search needs a zoo architecture (a zoo model or weights uploaded for one)")
    candidates: list[tuple[str, int | None, LoadedModel]] = [(model.name, None, model)]
    total = (1 + len(config.student_hidden)) * len(config.sparsities) * len(config.codebook_bits)
    done, points = 0, []
    for hidden in config.student_hidden:
        student = yield from _distilled(model, hidden, config.distill_epochs, BudgetProgress(done, total))
        candidates.append((f"student {hidden}", hidden, student))
    example = model.dataset.x_test[:1]
    timed = latency_in_turns([c.module for _, _, c in candidates], example, repeats=30, warmup=5)
    for (label, hidden, candidate), latency in zip(candidates, timed):
        weights = candidate.weights()
        for sparsity in config.sparsities:
            masks = global_magnitude_masks(weights, sparsity) if sparsity > 0 else {}
            pruned = {k: w * masks[k] if k in masks else w for k, w in weights.items()}
            for bits in config.codebook_bits:
                shared = {k: share_weights(w, bits) for k, w in pruned.items()}
                state = state_dict_of(candidate.module)
                state.update({k: s.dense() for k, s in shared.items()})
                file = clab.encode(state, shared, candidate.arch, index_bits=5)
                decoded = load_clab(file)
                size = len(file)
                value = size if config.metric == "size" else latency.median_ms
                point = BudgetPoint(label, hidden, sparsity, bits, decoded.evaluate().accuracy, size,
                                    latency.median_ms, value <= config.budget, latency.threads)
                points.append(point)
                done += 1
                yield BudgetProgress(done, total, point)
    return points


def best_under_budget(points: Sequence[BudgetPoint]) -> int | None:
    """Index of the most accurate point that fits (ties: the smaller file), or None."""
    fitting = [i for i, p in enumerate(points) if p.fits]
    if not fitting:
        return None
    return max(fitting, key=lambda i: (points[i].accuracy, -points[i].size_bytes))


def _distilled(teacher: LoadedModel, hidden: int, epochs: int,
               progress: BudgetProgress) -> Generator[BudgetProgress, None, LoadedModel]:
    """Train a student, yielding `progress` at every step of its training so Cancel is never kept waiting."""
    run = Drive(distill(teacher, DistillConfig(student_hidden=(hidden,), epochs=epochs, alpha=0.5, temperature=4.0)))
    for _ in run:
        yield progress
    result = run.result
    return LoadedModel(f"{teacher.name} student {hidden}", teacher.source, teacher.dataset,
                       module=result.student.eval(), arch=student_architecture(teacher.dataset.name))


def best_run(points: Sequence[BudgetPoint], config: BudgetConfig, model_name: str) -> Run | None:
    """The history record of a finished search: its most accurate point under the budget (None if none fits)."""
    best = best_under_budget(points)
    if best is None:
        return None
    p = points[best]
    return Run(kind="budget", model=model_name, config=config.to_dict(),
               metrics={"accuracy": p.accuracy, "size_bytes": p.size_bytes, "latency_ms": p.latency_ms,
                        "latency_stat": "median", "latency_batch": 1, "latency_threads": p.latency_threads,
                        "sparsity": p.sparsity, "bits": p.codebook_bits},
               label=f"budget best {p.sparsity:.0%}/{p.codebook_bits}b")
