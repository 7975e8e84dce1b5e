"""Comparing recorded runs: the Pareto frontier, and a run's file restored as a model."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from compression.metrics import LATENCY_METHOD
from compression.models.architectures import ARCHITECTURES, student_architecture
from compression.models.loading import LoadedModel, load_clab, load_weights


# Latencies within this fraction of each other count as equal on the accuracy-vs-latency frontier. A recorded run
# keeps its median, not its spread, and on a shared CPU two timings of the same dense model differ by a few percent
# (the budget search's decoded variants all run the same dense matrix multiplies): a frontier that steps at every
# such difference is drawn through timer noise.
LATENCY_TOLERANCE = 0.10


def pareto_front(xs: Sequence[float], ys: Sequence[float], x_tolerance: float = 0.0) -> list[int]:
    """Indices of the points no other point beats (smaller-or-equal x and larger-or-equal y, one strictly), by x.

    With `x_tolerance`, two xs within that fraction of the larger count as equal: a point is beaten by any more
    accurate point that is not meaningfully slower, and only a meaningfully smaller x is a strict gain (of equally
    accurate points within the tolerance, the fastest stands for all).
    """
    def tied(i: int, j: int) -> bool:
        return abs(xs[i] - xs[j]) <= x_tolerance * max(abs(xs[i]), abs(xs[j]))

    def beats(j: int, i: int) -> bool:
        if ys[j] < ys[i] or (xs[j] > xs[i] and not tied(i, j)):
            return False
        if ys[j] > ys[i] or (xs[j] < xs[i] and not tied(i, j)):
            return True
        # equally accurate and as fast within the tolerance: one point stands for them, the fastest (the first of
        # identical ones), so the frontier does not run along noise
        return xs[j] < xs[i] or (xs[j] == xs[i] and j < i)

    front = [i for i in range(len(xs)) if not any(beats(j, i) for j in range(len(xs)) if j != i)]
    return sorted(front, key=lambda i: (xs[i], -ys[i]))


UNKNOWN_METHOD = "measured an unrecorded way"


def latency_method_label(row: Mapping) -> str:
    """How a run's latency_ms was measured, in words: "median at batch 1, 1 thread"."""
    stat, batch, threads = (row.get(k) for k in LATENCY_METHOD)
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (stat, batch, threads)):
        return UNKNOWN_METHOD
    return f"{stat} at batch {int(batch)}, {int(threads)} thread{'s' if int(threads) != 1 else ''}"


def latency_groups(rows: Sequence[Mapping]) -> dict[str, list[int]]:
    """Indices of the rows that have a latency, grouped by how it was measured (largest group first): only
    latencies in one group may be compared."""
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        value = row.get("latency_ms")
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        groups.setdefault(latency_method_label(row), []).append(i)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0] == UNKNOWN_METHOD, -len(kv[1]))))


def model_from_run_file(file_name: str | None, file: bytes | None, model: str) -> LoadedModel | None:
    """The model stored with a run: a .clab names its architecture; a student's safetensors is an MLP on the
    dataset of the zoo model it was distilled from. None when the run stored no model file."""
    if not file:
        return None
    name = file_name or "model.clab"
    if name.endswith(".clab"):
        return load_clab(file, name)
    dataset = ARCHITECTURES[model].dataset if model in ARCHITECTURES else "digits"
    return load_weights(student_architecture(dataset), file, name)
