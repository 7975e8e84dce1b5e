"""Comparing recorded runs: the Pareto frontier, and a run's file restored as a model."""

from __future__ import annotations

from collections.abc import Sequence

from compression.models.architectures import ARCHITECTURES, student_architecture
from compression.models.loading import LoadedModel, load_clab, load_weights


def pareto_front(xs: Sequence[float], ys: Sequence[float]) -> list[int]:
    """Indices of points no other point beats (smaller-or-equal x and larger-or-equal y, one strictly), by x."""
    order = sorted(range(len(xs)), key=lambda i: (xs[i], -ys[i]))
    front, best_y = [], float("-inf")
    for i in order:
        if ys[i] > best_y:
            front.append(i)
            best_y = ys[i]
    return front


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
