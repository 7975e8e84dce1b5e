"""What recorded language-model runs buy, as a table the Compare page and the HTML report show: measured decode and
prefill speed at batch 1, peak memory, bytes read per token (computed), next-token top-1 accuracy, and the
bandwidth estimate (labelled). Plain numbers in, words out."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

TITLE = "Language-model runs: what they buy (batch 1)"
NOTE = ("Decode and prefill tokens/s and peak memory are measured (the model in a process of its own; peak memory "
        "includes that process's Python runtime); weights read per token are computed from the tensors the model "
        "reads; the estimate is this machine's copy bandwidth ÷ bytes read per token, not a measurement, and an upper "
        "bound; the estimate here adds the time per token measured outside the weight layers to the weights' bytes "
        "at that bandwidth.")
HEADERS = ("run", "model", "decode tokens/s", "× dense float32", "prefill tokens/s", "weights read per token",
           "peak memory", "perplexity", "perplexity on real kernels", "next-token top-1", "estimate tokens/s",
           "estimate here tokens/s")


def _number(v: object) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _fmt(v: object, kind: str) -> str:
    x = _number(v)
    if x is None:
        return ""
    if kind == "mib":
        return f"{x / 2 ** 20:,.1f} MiB"
    if kind == "ratio":
        return f"{x:.2f}×"
    if kind == "percent":
        return f"{x:.1%}"
    return f"{x:,.1f}" if kind == "rate" else f"{x:.2f}"


def measured_runs(rows: Sequence[Mapping]) -> list[Mapping]:
    """The runs that recorded a measured decode speed."""
    return [r for r in rows if _number(r.get("decode_tokens_per_s")) is not None]


def cost_table(rows: Sequence[Mapping]) -> tuple[str, list[str], list[list[str]], str]:
    """(title, headers, cells, note) of the runs that measured what they buy (empty cells when none did)."""
    cells = [[str(r.get("label", "")), str(r.get("model", "")), _fmt(r.get("decode_tokens_per_s"), "rate"),
              _fmt(r.get("decode_speedup"), "ratio"), _fmt(r.get("prefill_tokens_per_s"), "rate"),
              _fmt(r.get("weight_bytes_per_token"), "mib"), _fmt(r.get("peak_memory_bytes"), "mib"),
              _fmt(r.get("perplexity"), "plain"), _fmt(r.get("real_perplexity"), "plain"),
              _fmt(r.get("real_top1_accuracy", r.get("top1_accuracy")), "percent"),
              _fmt(r.get("predicted_decode_tokens_per_s"), "rate"),
              _fmt(r.get("predicted_decode_tokens_per_s_here"), "rate")] for r in measured_runs(rows)]
    return TITLE, list(HEADERS), cells, NOTE
