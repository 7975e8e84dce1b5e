"""Hardware-aware estimates, always labelled as estimates: this machine's memory bandwidth from a copy benchmark, a
table of device classes with published figures, and decode tokens/s predicted as bandwidth ÷ bytes read per token.

Decoding one token at batch 1 reads every weight once (and the KV cache) and does little arithmetic per byte, so
memory bandwidth bounds its speed: predicted tokens/s = bandwidth ÷ bytes per token, an upper bound a real runtime
approaches but does not reach (attention, norms, the framework's own overhead). On this machine, where that overhead
is measured, a second estimate adds it: the weight layers at bandwidth plus the measured time outside them.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from compression.core.errors import InputError

GB = 1e9  # bandwidths in GB/s, decimal, as vendors publish them
GIB = 2 ** 30
PREDICTION = "estimate: bandwidth ÷ bytes read per token (weights + KV cache)"
PREDICTION_HERE = ("estimate for this machine: 1 ÷ (weight bytes per token ÷ bandwidth + the measured time per token "
                   "outside the weight layers)")
FITS = ("estimate: every weight + a float16 KV cache of 2,048 tokens ≤ the device's memory (its OS and apps need "
        "some of it too)")


@dataclass(frozen=True)
class DeviceClass:
    """A kind of device, by its published memory bandwidth and memory size."""

    name: str
    bandwidth_gb_s: float
    memory_gib: float
    source: str

    def __post_init__(self):
        if not self.name.strip():
            raise InputError("a device needs a name")
        for what, value in (("bandwidth (GB/s)", self.bandwidth_gb_s), ("memory (GiB)", self.memory_gib)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e7:
                raise InputError(f"{self.name}: {what} must be a positive number, got {value!r}")

    def to_dict(self) -> dict:
        return asdict(self)


# Published figures, each with where it is published; the page lets a user edit them.
DEVICES = (
    DeviceClass("phone (Snapdragon 8 Gen 3, LPDDR5X)", 76.8, 12.0,
                "Qualcomm, Snapdragon 8 Gen 3 product brief: LPDDR5X up to 4800 MHz on a 64-bit bus, so "
                "4800 MHz × 2 transfers × 8 bytes = 76.8 GB/s peak; 12 GB in e.g. the Galaxy S24 Ultra (Samsung's "
                "spec page) — qualcomm.com/products/mobile/snapdragon/smartphones/snapdragon-8-series-mobile-"
                "platforms/snapdragon-8-gen-3-mobile-platform"),
    DeviceClass("laptop (Apple MacBook Air, M3)", 100.0, 16.0,
                "Apple, MacBook Air (13-inch, M3, 2024) Tech Specs: 100GB/s memory bandwidth, 8, 16 or 24 GB "
                "unified memory — support.apple.com/en-us/118551"),
    DeviceClass("data-centre GPU (NVIDIA H100 SXM)", 3350.0, 80.0,
                "NVIDIA, H100 Tensor Core GPU specifications: H100 SXM, GPU memory 80GB, GPU memory bandwidth "
                "3.35TB/s — nvidia.com/en-us/data-center/h100"),
)


def devices_from_rows(rows: Sequence[Mapping]) -> tuple[DeviceClass, ...]:
    """Device classes from edited table rows {name, bandwidth_gb_s, memory_gib, source}; blank rows skipped."""
    out = []
    for row in rows:
        if not str(row.get("name") or "").strip():
            continue
        try:
            out.append(DeviceClass(str(row["name"]), float(row["bandwidth_gb_s"]), float(row["memory_gib"]),
                                   str(row.get("source") or "entered by hand")))
        except (TypeError, ValueError, KeyError):
            raise InputError(f"device {row.get('name')!r}: bandwidth and memory must be numbers") from None
    return tuple(out)


def predicted_tokens_per_s(bandwidth_gb_s: float, bytes_per_token: float) -> float:
    """Estimate: decode tokens/s if reading `bytes_per_token` at `bandwidth_gb_s` were all a token cost."""
    return bandwidth_gb_s * GB / bytes_per_token if bytes_per_token > 0 else float("inf")


def predicted_tokens_per_s_here(bandwidth_gb_s: float, weight_bytes_per_token: float, other_ms: float) -> float:
    """Estimate: decode tokens/s if the weight layers ran at `bandwidth_gb_s` and the rest of a token took the
    `other_ms` measured outside them (which compressing the weights does not change)."""
    seconds = weight_bytes_per_token / (bandwidth_gb_s * GB) + other_ms / 1000.0
    return 1.0 / seconds if seconds > 0 else float("inf")


@dataclass(frozen=True)
class DeviceEstimate:
    """Estimates for one model on one device class (never measured)."""

    device: str
    fits: bool
    needed_bytes: int
    memory_bytes: int
    tokens_per_s: float

    def to_dict(self) -> dict:
        return asdict(self)


def estimate(device: DeviceClass, resident_bytes: int, bytes_per_token: float) -> DeviceEstimate:
    """Whether `resident_bytes` fit the device's memory and the decode tokens/s its bandwidth predicts."""
    memory = int(device.memory_gib * GIB)
    return DeviceEstimate(device.name, resident_bytes <= memory, int(resident_bytes), memory,
                          predicted_tokens_per_s(device.bandwidth_gb_s, bytes_per_token))


@dataclass(frozen=True)
class Bandwidth:
    """This machine's memory bandwidth from a copy: bytes of the buffer copied per second (median over repeats).

    Each byte is read once and written once; STREAM's "Copy" would report twice this figure. Decoding reads the
    weights, so the copy's read rate is what the prediction divides by."""

    gb_s: float
    gb_s_min: float
    gb_s_max: float
    buffer_bytes: int
    repeats: int
    threads: int

    def to_dict(self) -> dict:
        return asdict(self)


def measure_bandwidth(buffer_mib: int = 256, repeats: int = 7) -> Bandwidth:
    """Copy a float32 buffer of `buffer_mib` MiB (larger than the caches) into another, `repeats` times after one
    untimed copy, at the calling thread's torch threads: GB/s = buffer bytes ÷ seconds."""
    import torch  # lazy: compression.core stays importable without loading torch (the sidebar, the router)

    if buffer_mib < 1 or repeats < 1:
        raise InputError(f"buffer_mib and repeats must be at least 1, got {buffer_mib} and {repeats}")
    source = torch.ones(buffer_mib * 2 ** 20 // 4)
    target = torch.empty_like(source)
    target.copy_(source)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        target.copy_(source)
        rates.append(source.numel() * 4 / (time.perf_counter() - start) / GB)
    return Bandwidth(statistics.median(rates), min(rates), max(rates), source.numel() * 4, repeats,
                     torch.get_num_threads())
