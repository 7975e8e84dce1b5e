"""How weights are rounded: the one validated QuantConfig for every quantization method and every model."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from compression.core.errors import InputError

SCHEMES = ("symmetric", "asymmetric")
GRANULARITIES = ("per-tensor", "per-channel", "per-group")
RANGES = ("min-max", "percentile", "mse")
METHODS = ("rtn", "gptq", "awq")  # round-to-nearest; GPTQ and AWQ fit the rounding to calibration inputs
MIN_BITS, MAX_BITS = 1, 16


def check_bits(bits: int, what: str = "bits") -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise InputError(f"{what} must be an integer from {MIN_BITS} to {MAX_BITS}, got {bits!r}")


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


@dataclass(frozen=True)
class QuantConfig:
    """How weights are rounded; `layer_bits` overrides `bits` per weight (mixed precision)."""

    bits: int = 8
    scheme: str = "symmetric"
    granularity: str = "per-channel"  # one grid per tensor, per output channel, or per group of inputs in a row
    group_size: int = 64  # per-group: inputs per group (a row's last group may be shorter)
    range_method: str = "min-max"
    percentile: float = 99.9  # for range_method="percentile": clip at this percentile of the values
    binary: bool = False  # 1-bit layers become sign(w) x mean|w| instead of a uniform 2-level grid
    ternary: bool = False  # 2-bit layers become {-a, 0, +a} with threshold 0.7 x mean|w|
    layer_bits: tuple[tuple[str, int], ...] = ()
    method: str = "rtn"
    act_order: bool = True  # GPTQ: columns by decreasing diag H, grids fixed from the unquantized weights
    percdamp: float = 0.01  # GPTQ: λ = percdamp · mean diag H
    awq_grid: int = 20  # AWQ: α tried on a grid of this many points in [0, 1)
    awq_clip: bool = True  # AWQ: also search a clipping ratio per group
    fp16_scales: bool = False  # scales rounded up to float16 values, as GPTQ and GGUF files store them

    def __post_init__(self):
        check_bits(self.bits)
        for name, value, allowed in (("scheme", self.scheme, SCHEMES), ("granularity", self.granularity,
                                     GRANULARITIES), ("range_method", self.range_method, RANGES),
                                     ("method", self.method, METHODS)):
            check_choice(name, value, allowed)
        if not 50.0 < self.percentile <= 100.0:
            raise InputError(f"percentile must be in (50, 100], got {self.percentile}")
        if isinstance(self.group_size, bool) or not isinstance(self.group_size, int) or self.group_size < 1:
            raise InputError(f"group size must be a positive integer, got {self.group_size!r}")
        if not 0.0 < self.percdamp <= 10.0:
            raise InputError(f"dampening must be in (0, 10] (a fraction of mean diag H), got {self.percdamp}")
        if not 1 <= self.awq_grid <= 100:
            raise InputError(f"AWQ grid must have 1 to 100 points, got {self.awq_grid}")
        pairs = tuple(sorted(dict(self.layer_bits).items()))  # accept a dict, store a hashable tuple
        for layer, bits in pairs:
            check_bits(bits, f"bits of layer {layer}")
        object.__setattr__(self, "layer_bits", pairs)
        if self.method != "rtn":
            if self.range_method != "min-max":
                raise InputError(f"{self.method.upper()} rounds onto min-max grids; choose the min-max range")
            if self.binary or self.ternary:
                raise InputError(f"{self.method.upper()} rounds onto uniform grids: binary and ternary are RTN only")
        if self.method == "awq" and self.granularity == "per-tensor":
            raise InputError("AWQ searches its clipping per channel or per group: choose per-channel or per-group")

    @property
    def symmetric(self) -> bool:
        return self.scheme == "symmetric"

    @property
    def needs_calibration(self) -> bool:
        return self.method != "rtn"

    @property
    def group(self) -> int | None:
        """The group size in force (None unless per-group)."""
        return self.group_size if self.granularity == "per-group" else None

    def bits_for(self, layer: str) -> int:
        return dict(self.layer_bits).get(layer, self.bits)

    @property
    def label(self) -> str:
        grid = f"g{self.group_size}" if self.granularity == "per-group" else self.granularity
        return f"{self.method} {self.bits}-bit {grid}"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["layer_bits"] = dict(self.layer_bits)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> QuantConfig:
        data = {k: v for k, v in data.items() if k != "kind"}
        try:
            return cls(**data)
        except TypeError as exc:
            raise InputError(f"bad quantization config: {exc}") from None
