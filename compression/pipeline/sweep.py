"""Sweeps: a grid of one-shot compression settings over one model, expanded into cells.

A cell is a plain, serialisable config (`SweepCell.to_dict()` is JSON): whoever runs it, a thread here or a Ray
worker on another machine, loads the model itself from the zoo cache, a Hugging Face folder or a GGUF path
(`sweep_cell.run_cell`). Its id is fixed by the sweep (owner, model, shared settings) and its config, so the history
keeps each cell once however often it is delivered, and a resumed or widened sweep can tell the cells it has from
those still to run.

Axes: methods; sparsities (pruning: each method × each sparsity, or a 2:4 pattern for language models); bits and
group sizes (weight quantization: each method × bits × group size; group size 0 = one grid per output channel);
calibration (a language model's calibration texts, a classifier's number of calibration images). A method that needs
no calibration (magnitude, RTN) runs once whatever the calibration axis holds.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from compression.core import readable
from compression.core.errors import InputError
from compression.history import Run
from compression.lm import MODEL_NAMES
from compression.models import ZOO
from compression.pipeline.lm import PRUNE_METHODS as LM_PRUNE
from compression.pipeline.lm import QUANT_METHODS as LM_QUANT
from compression.pruning import CALIBRATED as PRUNE_CALIBRATED
from compression.quantization import QuantConfig

CLASSIFIER, LANGUAGE_MODEL = "classifier", "lm"
PRUNE_METHODS = LM_PRUNE  # magnitude, wanda, sparsegpt: the one-shot pruning methods every model takes
QUANT_METHODS = LM_QUANT  # rtn, gptq, awq
METHODS = PRUNE_METHODS + QUANT_METHODS
NM_2_4 = "2:4"
MAX_CELLS = 400  # a grid larger than this is refused: at 25-60 s a language-model cell, it is days of work
# Seconds per cell assumed for a method no earlier cell of the model has timed: a guess, and said to be one.
GUESS_S = {CLASSIFIER: {"magnitude": 1.0, "rtn": 1.0, "wanda": 2.0, "sparsegpt": 3.0, "gptq": 3.0, "awq": 4.0},
           LANGUAGE_MODEL: {"magnitude": 10.0, "rtn": 10.0, "wanda": 20.0, "sparsegpt": 40.0, "gptq": 40.0,
                            "awq": 60.0}}


def sweep_family(model: str) -> str:
    """Which kind of model `model` names, for a sweep: a zoo classifier, or a language model (tiny-gpt, smollm2, a
    Hugging Face folder, a .gguf file). A cell loads its model from such a name, so uploads cannot be swept."""
    if model in ZOO:
        return CLASSIFIER
    path = Path(model)
    if model in MODEL_NAMES or path.is_dir() or (path.is_file() and path.suffix.lower() == ".gguf"):
        return LANGUAGE_MODEL
    raise InputError(f"{model!r} is neither a zoo model ({', '.join(ZOO)}) nor a language model "
                     f"({', '.join(MODEL_NAMES)}, a Hugging Face folder, a .gguf file)")


def is_calibrated(method: str) -> bool:
    return method in PRUNE_CALIBRATED or (method in QUANT_METHODS and method != "rtn")


@dataclass(frozen=True)
class SweepGrid:
    """The axes of a sweep; every value is checked when the grid is expanded."""

    methods: tuple[str, ...]
    sparsities: tuple[float, ...] = (0.5,)  # pruning methods
    patterns: tuple[str, ...] = ("unstructured",)  # language models may add "2:4"
    bits: tuple[int, ...] = (4,)  # quantization methods
    group_sizes: tuple[int, ...] = (0,)  # 0: per output channel
    calibration_texts: tuple[str, ...] = ("kjv",)  # language models
    calibration_samples: tuple[int, ...] = (512,)  # classifiers: images; language models: windows

    def __post_init__(self):
        for name in ("methods", "sparsities", "patterns", "bits", "group_sizes", "calibration_texts",
                     "calibration_samples"):
            object.__setattr__(self, name, tuple(dict.fromkeys(getattr(self, name))))  # in order, once each
        unknown = [m for m in self.methods if m not in METHODS]
        if not self.methods or unknown:
            raise InputError(f"choose methods among {', '.join(METHODS)}" + (f"; not {', '.join(unknown)}"
                                                                               if unknown else ""))
        for s in self.sparsities:
            if not isinstance(s, (int, float)) or not 0.0 < s < 1.0:
                raise InputError(f"sparsities must lie strictly between 0 and 1, got {s!r}")
        for p in self.patterns:
            if p not in ("unstructured", NM_2_4):
                raise InputError(f"patterns are 'unstructured' or '2:4', got {p!r}")
        for g in self.group_sizes:
            if isinstance(g, bool) or not isinstance(g, int) or g < 0:
                raise InputError(f"group sizes are whole numbers (0: per channel), got {g!r}")
        for n in self.calibration_samples:
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise InputError(f"calibration sizes are positive whole numbers, got {n!r}")
        for b in self.bits:  # the same check every quantization config makes
            QuantConfig(bits=b)
        if not (self.sparsities and self.patterns and self.bits and self.group_sizes and self.calibration_texts
                and self.calibration_samples):
            raise InputError("every axis needs at least one value")

    def to_dict(self) -> dict:
        return {k: list(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class SweepSettings:
    """What every cell of a language-model sweep shares: the evaluation and the calibration windows' shape."""

    evaluation: str = "kjv"  # text whose last tenth is evaluated
    eval_samples: int = 16  # windows
    seq_len: int = 128  # tokens per window
    seed: int = 0  # where calibration windows are cut

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SweepCell:
    """One cell: a plain config that a worker runs after loading `model` itself."""

    sweep: str  # the sweep's id
    model: str  # zoo name, tiny-gpt, smollm2, a Hugging Face folder or a .gguf file
    family: str  # classifier | lm
    method: str
    sparsity: float | None = None
    nm: tuple[int, int] | None = None
    bits: int | None = None
    group_size: int | None = None  # quantization: 0 = per channel
    calibration_text: str = ""  # language models, calibrated methods
    calibration_samples: int = 0  # calibrated methods: images or windows
    evaluation: str = ""  # language models
    eval_samples: int = 0
    seq_len: int = 0
    seed: int = 0
    device: str = "cpu"  # where a language model's tensors go (cuda on a cluster with GPUs): not part of what it is

    @property
    def kind(self) -> str:
        """The history's kind of run: prune, quantize, or lm."""
        return LANGUAGE_MODEL if self.family == LANGUAGE_MODEL else (
            "prune" if self.method in PRUNE_METHODS else "quantize")

    @property
    def id(self) -> str:
        """sha256 of the sweep and the config (not the device), 16 hex digits."""
        config = {k: v for k, v in self.to_dict().items() if k not in ("sweep", "device")}
        return _digest({"sweep": self.sweep, "cell": config}, 16)

    @property
    def label(self) -> str:
        if self.method in PRUNE_METHODS:
            what = f"{self.method} {self.nm[0]}:{self.nm[1]}" if self.nm else f"{self.method} {self.sparsity:.0%}"
        else:
            what = f"{self.method} {self.bits}-bit " + (f"g{self.group_size}" if self.group_size else "per channel")
        if self.calibration_samples:
            what += ", " + self._calibration
        return what

    @property
    def series(self) -> str:
        """The chart line a cell belongs to: everything but its x value ('gptq g64, kjv 16', 'wanda 2:4')."""
        name = self.method + (" 2:4" if self.nm else "")
        if self.method in QUANT_METHODS:
            name += f" g{self.group_size}" if self.group_size else " per channel"
        if self.calibration_samples:
            name += ", " + self._calibration
        return name

    @property
    def _calibration(self) -> str:
        unit = "windows" if self.family == LANGUAGE_MODEL else "images"
        return f"{self.calibration_text + ' ' if self.calibration_text else ''}{self.calibration_samples} {unit}"

    @property
    def x_axis(self) -> tuple[str, float]:
        """Where the cell sits on its chart: ('sparsity', s) or ('bits', b)."""
        return ("sparsity", self.sparsity) if self.method in PRUNE_METHODS else ("bits", float(self.bits))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["nm"] = list(self.nm) if self.nm else None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> SweepCell:
        data = dict(data)
        data["nm"] = tuple(data["nm"]) if data.get("nm") else None
        return cls(**data)


@dataclass(frozen=True)
class Sweep:
    """A sweep: its id (fixed by its owner, model and shared settings, not by the axes: the same sweep started again,
    or with more values on an axis, skips the cells already done) and its cells in order."""

    id: str
    model: str
    family: str
    grid: SweepGrid
    settings: SweepSettings
    cells: tuple[SweepCell, ...] = field(repr=False)
    owner: str = ""  # who started it: its cells are theirs in the history ("" = anyone's)

    def __len__(self) -> int:
        return len(self.cells)


def expand_sweep(model: str, family: str, grid: SweepGrid, settings: SweepSettings = SweepSettings(),
                 owner: str = "", device: str = "cpu") -> Sweep:
    """The sweep of `grid` over `model` (family classifier or lm)."""
    if family not in (CLASSIFIER, LANGUAGE_MODEL):
        raise InputError(f"a sweep is over a classifier or a language model, not {family!r}")
    if family == CLASSIFIER and NM_2_4 in grid.patterns:
        raise InputError("the 2:4 pattern is for language-model sweeps here")
    # Not the axes: a grid widened later (another sparsity, another method) shares its cells with the first one,
    # and a cell the history holds is skipped whichever grid asks for it again.
    sweep_id = _digest({"owner": owner, "model": model, "family": family,
                        "settings": settings.to_dict() if family == LANGUAGE_MODEL else {}}, 12)
    lm = family == LANGUAGE_MODEL
    # the one-shot verbs of the classifiers run on the CPU; a language model's cells go where `device` says
    shared = {"sweep": sweep_id, "model": model, "family": family, "device": device if lm else "cpu"}
    if lm:
        shared.update(evaluation=settings.evaluation, eval_samples=settings.eval_samples, seq_len=settings.seq_len,
                      seed=settings.seed)
    cells = []
    for method in grid.methods:
        calibrations = [(text if lm else "", n) for text in (grid.calibration_texts if lm else ("",))
                        for n in grid.calibration_samples] if is_calibrated(method) else [("", 0)]
        if method in PRUNE_METHODS:
            settings_ = [{"sparsity": None, "nm": (2, 4)} if p == NM_2_4 else {"sparsity": float(s)}
                         for p in grid.patterns for s in (grid.sparsities if p != NM_2_4 else (None,))]
        else:
            settings_ = [{"bits": b, "group_size": g} for b in grid.bits for g in grid.group_sizes]
        for setting in settings_:
            for text, n in calibrations:
                cells.append(SweepCell(**shared, method=method, **setting, calibration_text=text,
                                       calibration_samples=n))
    if len(cells) > MAX_CELLS:
        raise InputError(f"this grid has {len(cells)} cells; at most {MAX_CELLS} run in one sweep")
    return Sweep(sweep_id, model, family, grid, settings, tuple(cells), owner)


def _digest(data: dict, digits: int) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:digits]


def longest_first(cells: Sequence[SweepCell]) -> list[SweepCell]:
    """`cells` in the order to start them: those expected to take longest first (more calibration samples, then a
    slower method; otherwise the grid's order)."""
    # Longest-processing-time-first: on several workers no long cell then starts last while the others sit idle.
    return sorted(cells, key=lambda c: (-c.calibration_samples, -GUESS_S[c.family].get(c.method, 1.0)))


@dataclass(frozen=True)
class SweepEstimate:
    """How long the cells still to run should take: an estimate, with what it is based on."""

    seconds: float
    slots: int
    timed: dict[str, float]  # method -> median seconds of earlier cells of it on this model (the history's)
    guessed: dict[str, float]  # method -> seconds assumed, no earlier cell having timed it
    cells: int  # cells counted (those not already done)

    @property
    def duration(self) -> str:
        """The estimate in words: 'under a second', 'about 40 s', 'about 3 min 10 s', 'about 1 h 5 min'."""
        total = round(self.seconds)
        if self.seconds < 1:
            return "under a second"
        if total < 90:
            return f"about {total} s"
        if total < 3600:
            return f"about {total // 60} min {total % 60} s"
        return f"about {total // 3600} h {total % 3600 // 60} min"

    @property
    def basis(self) -> str:
        """What the estimate rests on, in words."""
        parts = []
        if self.timed:
            parts.append("the median time per cell of earlier " + ", ".join(
                f"{m} cells ({readable.seconds(s)})" for m, s in self.timed.items()) + " of this model in the history")
        if self.guessed:
            parts.append("a guess for " + ", ".join(f"{m} ({readable.seconds(s)} a cell)"
                                                    for m, s in self.guessed.items()) +
                         ", which no earlier cell of this model has timed")
        return "; ".join(parts) or "nothing: no cell left to run"


def estimate_sweep(sweep: Sweep, history: Iterable[Run], slots: int, skip: Sequence[str] = ()) -> SweepEstimate:
    """Seconds the cells not in `skip` should take with `slots` running at once, from the time earlier cells of
    the same model and method took (their `timing` in the history) or else a per-method guess."""
    seconds_by_method: dict[str, list[float]] = {}
    for run in history:
        timing, cell = run.details.get("timing"), run.details.get("cell")
        if run.status == "done" and isinstance(timing, dict) and isinstance(cell, dict) \
                and cell.get("model") == sweep.model and isinstance(timing.get("seconds"), (int, float)):
            seconds_by_method.setdefault(cell.get("method"), []).append(float(timing["seconds"]))
    todo = [c for c in sweep.cells if c.id not in set(skip)]
    timed, guessed, total = {}, {}, 0.0
    for cell in todo:
        if cell.method in seconds_by_method:
            timed[cell.method] = statistics.median(seconds_by_method[cell.method])
            total += timed[cell.method]
        else:
            guessed[cell.method] = GUESS_S[sweep.family][cell.method]
            total += guessed[cell.method]
    parallel = max(1, min(slots, len(todo)))
    return SweepEstimate(total / parallel, slots, timed, guessed, len(todo))
