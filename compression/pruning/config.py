"""What to prune and how: the validated PruneConfig shared by every pruning method."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from compression.core.errors import InputError

METHODS = ("magnitude", "structured", "nm")
SCOPES = ("global", "layer")


@dataclass(frozen=True)
class PruneConfig:
    """What to prune: by `amount` (target sparsity) or `threshold` (keep |w| > threshold), N:M, or structured."""

    amount: float | None = None  # fraction of weights (structured: of units) set to zero
    threshold: float | None = None  # magnitude only: keep |w| > threshold
    method: str = "magnitude"  # magnitude | structured | nm
    scope: str = "global"  # global: one ranking over all layers; layer: the same amount in each layer
    exclude: tuple[str, ...] = ()  # layer or weight names left dense (e.g. the first and last)
    n: int = 2  # N:M keeps n of every m consecutive input weights
    m: int = 4
    norm: int = 1  # structured: rank units by L1 or L2 norm
    layer_amounts: tuple[tuple[str, float], ...] = ()  # per-layer amounts (e.g. from a sensitivity scan)

    def __post_init__(self):
        object.__setattr__(self, "exclude", tuple(self.exclude))
        object.__setattr__(self, "layer_amounts", tuple((str(k), float(v)) for k, v in self.layer_amounts))
        if self.method not in METHODS:
            raise InputError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.scope not in SCOPES:
            raise InputError(f"scope must be global or layer, got {self.scope!r}")
        for name, value in (("amount", self.amount), *self.layer_amounts):
            if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise InputError(f"sparsity ({name}) must be in [0, 1], got {value}")
        if self.threshold is not None and not (math.isfinite(self.threshold) and self.threshold >= 0):
            raise InputError(f"threshold must be a finite number >= 0, got {self.threshold}")
        if self.method == "nm":
            if self.amount is not None or self.threshold is not None:
                raise InputError("N:M pruning sets its own sparsity (1 - N/M): give N and M, not a sparsity")
            if not 1 <= self.n <= self.m <= 64:
                raise InputError(f"N:M needs 1 <= N <= M <= 64, got {self.n}:{self.m}")
            return
        if self.method == "structured":
            if self.threshold is not None or self.amount is None:
                raise InputError("structured pruning needs a sparsity (the fraction of units removed), "
                                 "not a threshold")
            if self.norm not in (1, 2):
                raise InputError(f"structured pruning ranks by the L1 or L2 norm, got L{self.norm}")
            return
        if (self.amount is None) == (self.threshold is None) and not self.layer_amounts:
            raise InputError("give either a sparsity or a threshold (exactly one)")

    def to_dict(self) -> dict:
        return asdict(self)
