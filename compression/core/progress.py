"""Driving the engine's progress generators: steps out while iterating, the result kept at the end."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

S = TypeVar("S")
R = TypeVar("R")


class Drive(Generic[S, R]):
    """Iterate a generator's steps; afterwards `.result` holds its return value.

    >>> run = Drive(finetune(model, config))
    >>> for step in run: ...
    >>> run.result
    """

    def __init__(self, generator: Generator[S, None, R]):
        self._generator = generator
        self.result: R | None = None

    def __iter__(self) -> Iterator[S]:
        self.result = yield from self._generator


def run_to_end(generator: Generator[S, None, R]) -> R:
    """Consume every step and return the generator's result (for callers that show no progress)."""
    run = Drive(generator)
    for _ in run:
        pass
    return run.result


@dataclass(frozen=True)
class Waiting:
    """A progress step of work that has not started: it waits for `what` (held by another process or session)."""

    what: str
    seconds: float  # waited so far
    fraction: float = 0.0  # no progress yet
