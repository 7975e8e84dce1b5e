"""The settings of each language-model method, as frozen dataclasses checked where they are built."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from compression.core.errors import InputError

PRUNE_METHODS = ("magnitude", "wanda", "sparsegpt")
QUANT_METHODS = ("rtn", "gptq", "awq")
SCOPES = ("row", "matrix")  # magnitude: rank within each output row, or over the whole matrix
ACT_GRANULARITIES = ("per-token", "per-tensor")


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def _check_bits(name: str, bits: int, low: int = 2, high: int = 16) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not low <= bits <= high:
        raise InputError(f"{name} must be an integer from {low} to {high}, got {bits!r}")


def _check_percdamp(percdamp: float) -> None:
    if not 0.0 < percdamp <= 10.0:
        raise InputError(f"dampening must be in (0, 10] (a fraction of mean diag H), got {percdamp}")


@dataclass(frozen=True)
class PruneConfig:
    """Magnitude, Wanda or SparseGPT at `sparsity` (unstructured) or with an N:M pattern (2:4 keeps 2 of 4)."""

    method: str = "wanda"
    sparsity: float = 0.5
    nm: tuple[int, int] | None = None
    scope: str = "row"
    percdamp: float = 0.01

    def __post_init__(self):
        _check_choice("method", self.method, PRUNE_METHODS)
        _check_choice("scope", self.scope, SCOPES)
        if not 0.0 <= self.sparsity < 1.0:
            raise InputError(f"sparsity must be in [0, 1), got {self.sparsity}")
        if self.nm is not None:
            n, m = self.nm
            if not 0 < n < m <= 64:
                raise InputError(f"N:M needs 0 < N < M <= 64, got {n}:{m}")
            object.__setattr__(self, "nm", (int(n), int(m)))
            object.__setattr__(self, "sparsity", 1 - n / m)
        _check_percdamp(self.percdamp)

    @property
    def needs_calibration(self) -> bool:
        return self.method != "magnitude"

    @property
    def label(self) -> str:
        pattern = f"{self.nm[0]}:{self.nm[1]}" if self.nm else f"{self.sparsity:.0%}"
        return f"{self.method} {pattern}"

    def to_dict(self) -> dict:
        return {"kind": "prune", **asdict(self), "nm": list(self.nm) if self.nm else None}


@dataclass(frozen=True)
class QuantizeConfig:
    """Weight-only RTN, GPTQ or AWQ at `bits`, per output channel (group_size 0) or per group of input columns."""

    method: str = "gptq"
    bits: int = 4
    group_size: int = 64
    act_order: bool = True  # GPTQ: columns by decreasing diag H, static groups (bench llm: 4-bit g64 1.09x, 1.19x off)
    percdamp: float = 0.01  # GPTQ: λ = percdamp · mean diag H
    symmetric: bool = False
    awq_grid: int = 20  # AWQ: α tried on a grid of this many points in [0, 1)
    awq_clip: bool = True  # AWQ: also search a clipping ratio per group

    def __post_init__(self):
        _check_choice("method", self.method, QUANT_METHODS)
        _check_bits("bits", self.bits)
        if self.group_size < 0:
            raise InputError(f"group size must be >= 0 (0 = per output channel), got {self.group_size}")
        _check_percdamp(self.percdamp)
        if not 1 <= self.awq_grid <= 100:
            raise InputError(f"AWQ grid must have 1 to 100 points, got {self.awq_grid}")

    @property
    def needs_calibration(self) -> bool:
        return self.method != "rtn"

    @property
    def label(self) -> str:
        return f"{self.method} {self.bits}-bit " + (f"g{self.group_size}" if self.group_size else "per-channel")

    def to_dict(self) -> dict:
        return {"kind": "quantize", **asdict(self)}


@dataclass(frozen=True)
class SmoothQuantConfig:
    """W·A· fake quantization of the norm-fed linears, after migrating s_j = max|X_j|^α / max|W_j|^(1−α)
    into the preceding norm (smooth=False: the naive baseline, same bits without migration)."""

    alpha: float = 0.5
    smooth: bool = True
    weight_bits: int = 8
    act_bits: int = 8
    act_granularity: str = "per-token"

    def __post_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise InputError(f"alpha must be in [0, 1], got {self.alpha}")
        _check_bits("weight bits", self.weight_bits)
        _check_bits("activation bits", self.act_bits)
        _check_choice("activation granularity", self.act_granularity, ACT_GRANULARITIES)

    @property
    def needs_calibration(self) -> bool:
        return self.smooth

    @property
    def label(self) -> str:
        name = f"smoothquant α={self.alpha:g}" if self.smooth else "naive"
        return f"{name} W{self.weight_bits}A{self.act_bits}"

    def to_dict(self) -> dict:
        return {"kind": "smoothquant", **asdict(self)}


LMConfig = PruneConfig | QuantizeConfig | SmoothQuantConfig


def config_from_dict(data: dict) -> LMConfig:
    """The inverse of `to_dict` (a saved run or a shared link back into a config)."""
    data = dict(data)
    kind = data.pop("kind", None)
    classes = {"prune": PruneConfig, "quantize": QuantizeConfig, "smoothquant": SmoothQuantConfig}
    if kind not in classes:
        raise InputError(f"unknown config kind {kind!r}")
    if data.get("nm") is not None:
        data["nm"] = tuple(data["nm"])
    try:
        return classes[kind](**data)
    except TypeError as exc:
        raise InputError(f"bad {kind} config: {exc}") from None
