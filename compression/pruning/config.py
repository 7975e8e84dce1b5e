"""What to prune and how: the one validated PruneConfig every pruning method and every model family uses."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from compression.core.errors import InputError

METHODS = ("magnitude", "wanda", "sparsegpt", "structured")
CALIBRATED = ("wanda", "sparsegpt")  # methods that need calibration inputs
SCOPES = ("global", "layer", "row")  # magnitude: one ranking over all layers, per layer, or per output row
MAX_M = 64


@dataclass(frozen=True)
class PruneConfig:
    """What to prune: by `amount` (target sparsity) or `threshold` (keep |w| > threshold), optionally in an N:M
    pattern (keep N of every M consecutive inputs), or whole units (structured).

    Wanda ranks within each output row and SparseGPT within each block of 128 columns, as their papers do;
    `scope` is magnitude's choice.
    """

    amount: float | None = None  # fraction of weights (structured: of units) set to zero
    threshold: float | None = None  # magnitude only: keep |w| > threshold
    method: str = "magnitude"
    scope: str = "global"
    nm: tuple[int, int] | None = None  # (N, M): the pattern sets the sparsity, 1 - N/M
    exclude: tuple[str, ...] = ()  # layer or weight names left dense (e.g. the first and last)
    norm: int = 1  # structured: rank units by L1 or L2 norm
    layer_amounts: tuple[tuple[str, float], ...] = ()  # per-layer amounts (e.g. from a sensitivity scan)
    percdamp: float = 0.01  # SparseGPT: λ = percdamp · mean diag H

    def __post_init__(self):
        object.__setattr__(self, "exclude", tuple(self.exclude))
        object.__setattr__(self, "layer_amounts", tuple((str(k), float(v)) for k, v in self.layer_amounts))
        if self.method not in METHODS:
            raise InputError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.scope not in SCOPES:
            raise InputError(f"scope must be one of {', '.join(SCOPES)}, got {self.scope!r}")
        for name, value in (("amount", self.amount), *self.layer_amounts):
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)
                                          and 0.0 <= value <= 1.0):
                raise InputError(f"sparsity ({name}) must be in [0, 1], got {value}")
        if self.threshold is not None and not (math.isfinite(self.threshold) and self.threshold >= 0):
            raise InputError(f"threshold must be a finite number >= 0, got {self.threshold}")
        if not 0.0 < self.percdamp <= 10.0:
            raise InputError(f"dampening must be in (0, 10] (a fraction of mean diag H), got {self.percdamp}")
        if self.method != "magnitude" and self.threshold is not None:
            raise InputError(f"{self.method} prunes by a sparsity, not a threshold")
        if self.method in CALIBRATED and (self.scope == "global" or self.layer_amounts):
            object.__setattr__(self, "scope", "row")  # their own ranking: per row (Wanda), per block (SparseGPT)
            if self.layer_amounts:
                raise InputError(f"{self.method} prunes every layer to the same sparsity: no per-layer amounts")
        if self.nm is not None:
            self._check_nm()
            return
        if self.method == "structured":
            if self.amount is None:
                raise InputError("structured pruning needs a sparsity (the fraction of units removed)")
            if self.norm not in (1, 2):
                raise InputError(f"structured pruning ranks by the L1 or L2 norm, got L{self.norm}")
            return
        if (self.amount is None) == (self.threshold is None) and not self.layer_amounts:
            raise InputError("give either a sparsity or a threshold (exactly one)")

    def _check_nm(self) -> None:
        try:
            n, m = (int(v) for v in self.nm)
        except (TypeError, ValueError):
            raise InputError(f"N:M must be two integers, got {self.nm!r}") from None
        if not 1 <= n <= m <= MAX_M:
            raise InputError(f"N:M needs 1 <= N <= M <= {MAX_M}, got {n}:{m}")
        if self.method == "structured":
            raise InputError("structured pruning removes whole units: it has no N:M pattern")
        if self.threshold is not None or self.layer_amounts or (
                self.amount is not None and abs(self.amount - (1 - n / m)) > 1e-9):
            raise InputError("N:M pruning sets its own sparsity (1 - N/M): give N and M, not a sparsity")
        object.__setattr__(self, "nm", (n, m))
        object.__setattr__(self, "amount", 1 - n / m)

    @property
    def needs_calibration(self) -> bool:
        return self.method in CALIBRATED

    @property
    def label(self) -> str:
        pattern = f"{self.nm[0]}:{self.nm[1]}" if self.nm else (
            f"τ={self.threshold:g}" if self.threshold is not None else f"{self.amount or 0:.0%}")
        return f"{self.method} {pattern}"

    def to_dict(self) -> dict:
        return {**asdict(self), "nm": list(self.nm) if self.nm else None}

    @classmethod
    def from_dict(cls, data: dict) -> PruneConfig:
        data = {k: v for k, v in data.items() if k != "kind"}
        if data.get("nm") is not None:
            data["nm"] = tuple(data["nm"])
        data["exclude"] = tuple(data.get("exclude", ()))
        data["layer_amounts"] = tuple(tuple(p) for p in data.get("layer_amounts", ()))
        try:
            return cls(**data)
        except TypeError as exc:
            raise InputError(f"bad pruning config: {exc}") from None
