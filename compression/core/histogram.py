"""A histogram as plain numbers: what the engine measures and the figure builders draw (no torch here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Histogram:
    """Counts of values in equal-width bins; `edges` has one more entry than `counts`."""

    counts: list[int]
    edges: list[float]

    @property
    def centers(self) -> list[float]:
        return [(a + b) / 2 for a, b in zip(self.edges[:-1], self.edges[1:])]
