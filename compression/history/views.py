"""Recorded runs as a reader takes them in: classifiers and language models apart, each ranked by its own measure
(accuracy, higher is better; perplexity, lower is better), a compact set of columns per family, names that tell
runs apart, and a short gloss of the jargon. Compare, the CSV and the reports all read runs through here."""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence

from compression.core import readable

LM = "lm"  # the kind of a language-model run
# The columns each family's table shows, in order: what it is, then its measures (so a narrow window shows them
# first), then the bookkeeping. A column no shown run fills is left out.
CLASSIFIER_COLUMNS = ("label", "model", "accuracy", "baseline_accuracy", "gain", "size_bytes", "baseline_size_bytes",
                      "compression_ratio", "latency_ms", "sparsity", "bits", "kind", "status", "created", "id")
LM_COLUMNS = ("label", "model", "perplexity", "baseline_perplexity", "size_bytes", "baseline_size_bytes", "setting",
              "calibration_text", "evaluation_text", "tokens", "seconds", "status", "created", "id")
LM_NAMES = {"size_bytes": "packed file", "baseline_size_bytes": "float16 file"}
GLOSSARY = {
    "accuracy": "the share of held-out test images (never seen in training) the model classifies correctly; "
                "higher is better.",
    "perplexity": "how surprised a language model is by held-out text: e to the mean loss per predicted token. "
                  "Lower is better; the dense (uncompressed) model on the same tokens is the reference.",
    "sparsity": "the share of weights set to zero by pruning.",
    "bits": "bits per weight after quantization (32 for ordinary float weights).",
    "W6A6, W8A8": "weights and activations both rounded to 6 (or 8) bits; SmoothQuant first moves the activations' "
                  "outliers into the weights, the naive run does not.",
    "packed file": "the compressed weights as really stored: low-bit codes with their scales, or kept values with "
                   "their positions; for a language model its size is compared with every weight in float16.",
    ".clab file": "the pipeline's compressed file (pruned, weight-shared and Huffman-coded weights), decoded again "
                  "before its accuracy is measured.",
    "latency": "the time of one forward pass (median of repeated runs after a warm-up).",
    "gain vs scratch": "distillation: accuracy of the distilled student minus that of the same student trained "
                       "on the labels alone, in percentage points.",
    "calibration text": "the text whose activations calibrated the method (Wanda, SparseGPT, GPTQ, AWQ, "
                        "SmoothQuant); its first nine tenths only.",
    "evaluation text": "the text perplexity was measured on: its last tenth, never used for calibration.",
}


def number(v: object) -> float | None:
    """A finite number, or None (missing, NaN, text)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def glossary(texts: Sequence[str]) -> dict[str, str]:
    """The glossary entries for the terms these texts use (W6A6 or W8A8 for any W·A· label)."""
    said = " ".join(texts).lower()
    uses_wa = re.search(r"\bw\d+a\d+\b", said) is not None
    return {k: v for k, v in GLOSSARY.items() if (uses_wa if k == "W6A6, W8A8" else k.lower() in said)}


def is_language_model(row: Mapping) -> bool:
    """A language-model run: judged by perplexity, never by accuracy."""
    return row.get("kind") == LM or number(row.get("perplexity")) is not None


def split_families(rows: Sequence[Mapping]) -> tuple[list[Mapping], list[Mapping]]:
    """(classifier runs, language-model runs), each in the given order."""
    return [r for r in rows if not is_language_model(r)], [r for r in rows if is_language_model(r)]


def lm_setting(config: Mapping) -> str:
    """What a language-model run did, from its config: '50% of weights zeroed (2:4)', '4-bit weights, groups of 64',
    'W6A6 after smoothing (α=0.5)'."""
    what = config.get("kind")
    if what == "prune":
        nm = config.get("nm")
        amount = 0.5 if nm and not config.get("amount") else config.get("amount")
        pattern = f" ({nm[0]}:{nm[1]})" if nm else ""
        return f"{amount:.0%} of weights zeroed{pattern}" if isinstance(amount, (int, float)) else f"pruned{pattern}"
    if what == "quantize":
        grid = f"groups of {config.get('group_size')}" if config.get("granularity") == "per-group" else \
            str(config.get("granularity", "")).replace("-", " ")
        return f"{config.get('bits')}-bit weights, {grid}"
    if what == "smoothquant":
        w, a = config.get("weight_bits"), config.get("act_bits")
        how = f"after smoothing (α={config.get('alpha'):g})" if config.get("smooth") else "without smoothing"
        return f"W{w}A{a}: {w}-bit weights and activations, {how}"
    return ""


def lm_evaluation(row: Mapping) -> str:
    """The evaluation a language-model run's perplexity was measured on: 'kjv, 2,032 tokens'."""
    tokens = number(row.get("tokens"))
    text = row.get("evaluation_text") or "unrecorded text"
    return f"{text}, {int(tokens):,} tokens" if tokens is not None else str(text)


def lm_group(row: Mapping) -> str:
    """Runs comparable on one perplexity axis: the same model on the same evaluation tokens."""
    return f"{row.get('model', '')} · {lm_evaluation(row)}"


def run_names(rows: Sequence[Mapping], with_model: bool = True) -> list[str]:
    """'model · label' (or the label alone) for each run, unique: a name several runs share gets each run's time
    (day and minute, then the second too), and a name still shared gets the run's id."""
    names = [f"{r.get('model', '')} · {r.get('label', '')}" if with_model else str(r.get("label", "")) for r in rows]
    for tell_apart in (lambda r: _when(r, "%d %b %H:%M"), lambda r: _when(r, "%S s"), lambda r: str(r.get("id", ""))):
        counts = Counter(names)
        names = [f"{n} · {tell_apart(r)}" if counts[n] > 1 else n for n, r in zip(names, rows)]
    return names


def _when(row: Mapping, fmt: str) -> str:
    """The run's recording time in `fmt` (rows carry it as runs_table's 'created' text)."""
    try:
        return time.strftime(fmt, time.strptime(str(row.get("created")), "%Y-%m-%d %H:%M:%S"))
    except ValueError:
        return str(row.get("created"))


def compact(rows: Sequence[Mapping], columns: Sequence[str]) -> list[str]:
    """The columns among `columns` that at least one row fills (a number or a non-empty text), in that order."""
    def filled(key: str, v: object) -> bool:
        if key == "status":  # worth a column only when some run did not simply finish
            return v not in (None, "", "done")
        return number(v) is not None if isinstance(v, (int, float)) and not isinstance(v, bool) else v not in (None, "")
    return [c for c in columns if any(filled(c, r.get(c)) for r in rows)]


def cell(key: str, v: object) -> str:
    """One table cell in words: kinds named, numbers in their unit, missing values blank."""
    if key == "kind" and isinstance(v, str):
        return readable.kind(v)
    return readable.value(key, v)


def header(key: str, language_models: bool = False) -> str:
    """A column's header in words; a language model's file is its packed file beside every weight in float16."""
    if language_models and key in LM_NAMES:
        return LM_NAMES[key]
    return readable.name(key) + (" (lower is better)" if key == "perplexity" else "")


def table_of(rows: Sequence[Mapping], columns: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """(headers in words, cells in words) of `rows` over the filled ones of `columns`."""
    shown = compact(rows, columns)
    headers = [header(c, "perplexity" in columns) for c in shown]
    labels = run_names(rows, with_model=False)  # five runs with one label read apart here too
    return headers, [[label if c == "label" else cell(c, r.get(c)) for c in shown] for r, label in zip(rows, labels)]


def best_classifier(rows: Sequence[Mapping]) -> Mapping | None:
    """The most accurate classifier run (None when none recorded an accuracy)."""
    scored = [r for r in rows if not is_language_model(r) and number(r.get("accuracy")) is not None]
    return max(scored, key=lambda r: r["accuracy"], default=None)


def best_language_models(rows: Sequence[Mapping]) -> dict[str, Mapping]:
    """{model · evaluation: its lowest-perplexity run}: perplexities compare only on the same model and tokens."""
    best: dict[str, Mapping] = {}
    for r in rows:
        if is_language_model(r) and number(r.get("perplexity")) is not None:
            group = lm_group(r)
            if group not in best or r["perplexity"] < best[group]["perplexity"]:
                best[group] = r
    return best


def summarise(rows: Sequence[Mapping]) -> dict[str, str]:
    """The headline of a set of runs: the most accurate classifier, and per language model and evaluation the
    lowest perplexity beside the dense model's."""
    classifiers, lms = split_families(rows)
    out = {"runs": f"{len(rows):,} ({len(classifiers):,} classifier, {len(lms):,} language-model)"}
    best = best_classifier(rows)
    if best is not None:
        size = readable.value("size_bytes", best.get("size_bytes"))
        out["most accurate classifier run"] = (f"{best.get('model', '')} · {best.get('label', '')} "
                                               f"({readable.kind(str(best.get('kind', '')))}): accuracy "
                                               f"{readable.percent(best['accuracy'], 2)}"
                                               + (f", file {size}" if size else ""))
    for group, r in best_language_models(rows).items():
        dense = number(r.get("baseline_perplexity"))
        size = readable.value("size_bytes", r.get("size_bytes"))
        out[f"lowest perplexity, {group}"] = (
            f"{r.get('label', '')}: {readable.perplexity(r['perplexity'])}"
            + (f" (dense model {readable.perplexity(dense)})" if dense is not None else "")
            + (f", file {size}" if size else "") + "; lower is better")
    return out
