"""What users read: percentages, bytes, milliseconds, counts and metric names, written one way everywhere.

Pages, the Compare page and the HTML report all format through here (the engine's report cannot import ui/).
"""

from __future__ import annotations

import math
import re

# Metric keys as recorded (snake_case, units in the name) -> the words a stakeholder reads. Every key the history can
# hold has its own words here (tests/test_readable.py records real runs of every kind and checks each key), and no two
# keys share words: two different columns never read the same.
NAMES = {
    # what every run has
    "id": "id", "created": "recorded", "kind": "kind", "model": "model", "label": "run", "status": "status",
    # accuracy and size
    "accuracy": "accuracy", "baseline_accuracy": "accuracy before", "loss": "test loss",
    "baseline_loss": "test loss before", "size_bytes": "file size", "baseline_size_bytes": "file size before",
    "sparse_size_bytes": "sparse file", "shrunk_size_bytes": "shrunk file", "compression_ratio": "compression ratio",
    "params": "parameters", "baseline_params": "parameters before", "nonzero_params": "non-zero parameters",
    "shrunk_params": "shrunk parameters",
    # latency and how it was measured
    "latency_ms": "latency", "baseline_latency_ms": "latency before", "dense_latency_ms": "dense latency",
    "shrunk_latency_ms": "shrunk latency", "latency_stat": "latency statistic", "latency_batch": "latency batch size",
    "latency_threads": "latency threads",
    # pruning
    "sparsity": "sparsity", "target_sparsity": "target sparsity", "threshold": "threshold τ",
    "oneshot_accuracy": "one-shot accuracy", "retention": "kept of dense", "finetune_epochs": "fine-tune epochs",
    "calibration_samples": "calibration images",
    # quantization
    "bits": "bits", "activation_bits": "activation bits", "weight_only_accuracy": "weights-only accuracy",
    "ptq_accuracy": "PTQ accuracy", "qat_accuracy": "QAT accuracy", "qat_epochs": "QAT epochs",
    "control_accuracy": "fp32 control", "control_ptq_accuracy": "fp32 control, then PTQ",
    # distillation
    "student_accuracy": "distilled student accuracy", "scratch_accuracy": "scratch student accuracy",
    "teacher_accuracy": "teacher accuracy", "agreement": "agreement with teacher",
    "scratch_agreement": "scratch agreement with teacher", "gain": "gain vs scratch",
    "student_params": "student parameters", "teacher_params": "teacher parameters",
    "student_size_bytes": "student file", "teacher_size_bytes": "teacher file",
    "student_latency_ms": "student latency", "teacher_latency_ms": "teacher latency",
    "labeled_images": "labelled images", "train_images": "training images", "steps": "training steps",
    "elapsed_s": "training time", "epochs": "epochs",
    # language models
    "perplexity": "perplexity", "baseline_perplexity": "dense perplexity", "tokens": "evaluation tokens",
    "top1_accuracy": "next-token accuracy", "baseline_top1_accuracy": "dense next-token accuracy",
    "seconds": "compression time", "seq_len": "tokens per window", "new_tokens": "generated tokens",
    "calibration_text": "calibration text", "evaluation_text": "evaluation text", "setting": "what it did",
}
FRACTIONS = ("accuracy", "sparsity", "retention", "agreement")  # keys holding a fraction shown in %
POINTS = ("gain",)  # differences of two accuracies: shown in percentage points, signed
SECONDS = ("seconds", "elapsed_s")  # durations in seconds
KINDS = {"prune": "pruning", "quantize": "quantization", "distill": "distillation", "pipeline": "pipeline",
         "budget": "budget search", "lm": "language model"}
_UNIT_SUFFIX = re.compile(r"_(bytes|ms|s)$")


def name(key: str) -> str:
    """A metric key as words: 'baseline_latency_ms' -> 'latency before'; an unknown key loses its unit suffix only
    ('foo_latency_ms' -> 'foo latency', 'target_sparsity' keeps its s)."""
    if key in NAMES:
        return NAMES[key]
    return _UNIT_SUFFIX.sub("", key).replace("_", " ").strip()


def kind(key: str) -> str:
    """A run's kind as words: 'lm' -> 'language model'."""
    return KINDS.get(key, key)


def is_fraction(key: str) -> bool:
    return any(key == f or key.endswith("_" + f) for f in FRACTIONS)


def percent(fraction: float, digits: int = 1) -> str:
    return f"{fraction:.{digits}%}"


def points(delta: float, digits: int = 1, unit: str = "pts") -> str:
    """A difference of two fractions in percentage points, signed: '+14.2 pts' on a card, '+14.17 points' in a
    table (`unit="points"`)."""
    return f"{100 * delta:+.{digits}f} {unit}"


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


def shape(dims) -> str:
    """An array shape as people write it: '360 × 64', 'N × 1 × 8 × 8' (None: any size), never '(360, 64)'."""
    return " × ".join("N" if d is None or d == "N" else str(d) for d in dims) or "a single value"


def seconds(value: float) -> str:
    """A duration at one precision, tenths of a second: '12.3 s', '0.4 s', '< 0.1 s' (never '0.0 s')."""
    if 0 < value < 0.05:
        return "< 0.1 s"
    return f"{value:,.1f} s"


def perplexity(value: float) -> str:
    """Perplexity with two decimals (5.47, 930.12): lower is better."""
    return f"{value:,.2f}"


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
    if key in POINTS:
        return points(v, 2, "points")
    if key in SECONDS:
        return seconds(v)
    if key.endswith("perplexity"):
        return perplexity(v)
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
