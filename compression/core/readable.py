"""What users read: percentages, bytes, milliseconds, counts and metric names, written one way everywhere.

Pages, the Compare page and the HTML report all format through here (the engine's report cannot import ui/).
"""

from __future__ import annotations

import math

# Metric keys as recorded (snake_case, units in the name) -> the words a stakeholder reads.
NAMES = {
    "accuracy": "accuracy", "baseline_accuracy": "accuracy before", "size_bytes": "file size",
    "baseline_size_bytes": "file size before", "sparse_size_bytes": "sparse file", "shrunk_size_bytes":
    "shrunk file", "latency_ms": "latency", "baseline_latency_ms": "latency before", "dense_latency_ms":
    "dense latency", "shrunk_latency_ms": "shrunk latency", "params": "parameters", "nonzero_params":
    "non-zero parameters", "shrunk_params": "shrunk parameters", "compression_ratio": "compression ratio",
    "sparsity": "sparsity", "threshold": "threshold τ", "oneshot_accuracy": "one-shot accuracy",
    "retention": "kept of dense", "agreement": "agreement with teacher", "gain": "gain vs scratch",
    "student_accuracy": "distilled student", "scratch_accuracy": "scratch student",
    "teacher_accuracy": "teacher", "control_accuracy": "fp32 control", "control_ptq_accuracy":
    "fp32 control, then PTQ", "ptq_accuracy": "PTQ accuracy", "qat_accuracy": "QAT accuracy",
    "student_params": "student parameters", "teacher_params": "teacher parameters", "created": "recorded",
    "kind": "kind", "model": "model", "label": "run", "id": "id", "bits": "bits", "loss": "loss",
    "elapsed_s": "time (s)", "seconds": "time (s)", "epochs": "epochs", "student_size_bytes": "student file",
    "teacher_size_bytes": "teacher file", "student_latency_ms": "student latency",
    "teacher_latency_ms": "teacher latency", "labeled_images": "labelled images", "train_images": "training images",
}
FRACTIONS = ("accuracy", "sparsity", "retention", "agreement", "gain")  # keys holding a fraction shown in %


def name(key: str) -> str:
    """A metric key as words: 'baseline_latency_ms' -> 'latency before'."""
    if key in NAMES:
        return NAMES[key]
    words = key.replace("_bytes", "").replace("_ms", "").replace("_s", "").replace("_", " ")
    return words.strip()


def is_fraction(key: str) -> bool:
    return any(key == f or key.endswith("_" + f) for f in FRACTIONS)


def percent(fraction: float, digits: int = 1) -> str:
    return f"{fraction:.{digits}%}"


def points(delta: float, digits: int = 1) -> str:
    """A difference of two fractions in percentage points, signed."""
    return f"{100 * delta:+.{digits}f} pts"


def size(n_bytes: float) -> str:
    """Bytes in the unit that reads best (B, KiB, MiB), binary prefixes."""
    if n_bytes < 1024:
        return f"{n_bytes:,.0f} B"
    if n_bytes < 1024 ** 2:
        return f"{n_bytes / 1024:,.1f} KiB"
    return f"{n_bytes / 1024 ** 2:,.2f} MiB"


def ms(value: float) -> str:
    """Milliseconds with three significant digits (0.0512 ms, 5.13 ms, 31.9 ms)."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g} ms"
    digits = max(0, 2 - int(math.floor(math.log10(abs(value)))))
    return f"{value:,.{digits}f} ms"


def count(n: int) -> str:
    return f"{n:,}"


def value(key: str, v: object) -> str:
    """One recorded metric, formatted by what its key says it holds; None reads as an empty cell."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if key.endswith("_bytes"):
        return size(v)
    if key.endswith("_ms"):
        return ms(v)
    if is_fraction(key):
        return percent(v, 2)
    if key.endswith("ratio"):
        return f"{v:.1f}×"
    if isinstance(v, int) or (abs(v) >= 1000 and float(v).is_integer()):  # 38282.0 parameters, not 3.828e+04
        return count(int(v))
    return f"{v:.4g}"


def one_image_each(samples: dict[str, int]) -> str:
    """`one_image` for several test sets at once: {dataset: held-out images}."""
    parts = [f"on {name} one test image is {100 / n:.2f} points ({n:,} held-out images)" for name, n in samples.items()]
    return "How big a difference means anything: " + "; ".join(parts) + ". A gap of a few images is chance."


def one_image(samples: int) -> str:
    """How much one test image moves an accuracy: the smallest difference that can mean anything."""
    return (f"One test image is {100 / samples:.2f} points on these {samples:,} held-out images: differences of "
            "a few images are chance, not a better method.")
