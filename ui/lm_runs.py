"""The Language-model page's runs: one background Job compresses, evaluates and samples each chosen method.

The job thread never calls st.*: it yields LMProgress; a finished method comes out as a plain dict (no model is
kept, so a session holds numbers only). Every method of a batch is in the history from the moment the batch starts
(in flight), and the job's own thread ends each record: done with its measurements, or cancelled or failed with the
batch, whether or not a page still watches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

from torch import Tensor

from compression import lm  # lm.generate: a name that is also one of its modules' names
from compression.calibration import BlockStep
from compression.core import Drive, Job, run_to_end
from compression.history import HistoryError, Run, RunStore, run_from_result
from compression.lm import EvalProgress, LanguageModel, perplexity_steps
from compression.pipeline import (LMResult, OneShotConfig, compress_lm, config_from_dict, fp16_size_bytes,
                                  lm_config, method_kind, method_of, pack, packed_size_bytes)
from compression.pruning import PruneConfig
from compression.quantization import QuantConfig

METHODS = ("magnitude", "wanda", "sparsegpt", "rtn", "gptq", "awq", "smoothquant", "naive")  # naive: W·A, no migration
PRUNING = ("magnitude", "wanda", "sparsegpt")
W_A = ("smoothquant", "naive")
SHORT = (4, 32)  # the live RTN's first, quick evaluation slice: windows x tokens
PACKED_KEEP_BYTES = 16 << 20  # packed files up to this size stay in the session for download (the tiny GPT's do)
IN_FLIGHT = "running"  # the history's status of a run under way (compression.history.store.IN_FLIGHT)
# what a row holds that the history keeps elsewhere (run id, label, config) or that is the session's own
NOT_RECORDED = ("spec", "eval_key", "series", "method", "label", "packed", "run_id", "history_error")
# recorded together as one detail ("measured_on"): how many tokens and windows, and the perplexity's noise
MEASURED_ON = ("windows", "nll_se", "calibration_tokens", "eval_samples")


@dataclass(frozen=True)
class LMProgress:
    """Method `index` of `total`: at decoder layer `step`, or evaluating (`evaluated` windows of `windows`), or
    sampling; `row` holds its measurements once it has finished."""

    index: int
    total: int
    label: str
    step: BlockStep | None = None
    evaluating: EvalProgress | None = None
    row: dict | None = None

    @property
    def fraction(self) -> float:
        if self.step is not None:
            within = self.step.fraction * 0.8  # compression: the first four fifths of a method's share
        elif self.evaluating is not None:
            within = 0.8 + 0.18 * self.evaluating.done / self.evaluating.total
        else:
            within = 1.0 if self.row is not None else 0.98  # sampling the prompt's continuation
        return (self.index + within) / self.total

    @property
    def text(self) -> str:
        if self.step is not None:
            where = f"layer {self.step.index + 1}/{self.step.blocks}"
        elif self.evaluating is not None:
            where = f"perplexity, window {self.evaluating.done}/{self.evaluating.total}"
        else:
            where = "done" if self.row is not None else "greedy continuation of the prompt"
        return f"{self.label} ({self.index + 1} of {self.total}): {where}"


def configs_for(methods: Sequence[str], sparsity: float, pattern: str, bits: int, group_size: int,
                alpha: float, wa_bits: int, act_granularity: str) -> list[OneShotConfig]:
    """One config per chosen method from the page's sliders (raises InputError on a bad value).

    SmoothQuant and its naive baseline quantize weights and activations to `wa_bits` (W8A8, W6A6).
    """
    nm = (2, 4) if pattern == "2:4" else None
    return [lm_config(method, sparsity, nm, bits, group_size, alpha, wa_bits, act_granularity) for method in methods]


def series_of(config: OneShotConfig) -> str:
    """The chart line a config's point joins: a method, plus the grid or pattern that makes it a different curve
    (a W·A· run's bits are the x of its own chart, so they are not in its line's name)."""
    if isinstance(config, PruneConfig):
        return f"{config.method} {config.nm[0]}:{config.nm[1]}" if config.nm else config.method
    if isinstance(config, QuantConfig):
        return f"{config.method} " + (f"g{config.group_size}" if config.granularity == "per-group" else "per-channel")
    name = f"smoothquant α={config.alpha:g}" if config.smooth else "naive"
    return f"{name} {config.act_granularity}"


def plotted(row: dict) -> dict:
    """What the charts read of a row: its x is the sparsity (pruning), the weight bits, or W·A· (its own chart)."""
    config = row["config"]
    if row["method"] in PRUNING:
        return {**row, "x": row["target_sparsity"]}
    if row["method"] in W_A:
        return {**row, "wa": f"W{config['weight_bits']}A{config['act_bits']}"}
    return {**row, "x": row["bits"]}


def measure(model: LanguageModel, result: LMResult, evaluation: Tensor, prompt: str, new_tokens: int) -> dict:
    """`measure_steps` without its progress."""
    return run_to_end(measure_steps(model, result, evaluation, prompt, new_tokens))


def measure_steps(model: LanguageModel, result: LMResult, evaluation: Tensor, prompt: str,
                  new_tokens: int) -> Generator[EvalProgress | None, None, dict]:
    """What the page keeps of one compressed model: numbers and text, never the model. Yields the evaluation's
    progress, then None while it samples the prompt's continuation."""
    config = result.config
    ppl = yield from perplexity_steps(result.lm.model, evaluation)
    yield None
    bits = getattr(config, "bits", None) or getattr(config, "weight_bits", None)
    size_bytes = packed_size_bytes(result)
    return {
        "method": method_of(config), "series": series_of(config), "label": config.label,
        "config": {"kind": method_kind(config), **config.to_dict()}, "sparsity": result.sparsity(), "bits": bits,
        "target_sparsity": config.amount if isinstance(config, PruneConfig) else None,
        "perplexity": ppl.perplexity, "tokens": ppl.tokens, **ppl.noise(),
        "seconds": result.seconds, "size_bytes": size_bytes,
        "packed": pack(result) if size_bytes <= PACKED_KEEP_BYTES else None,
        "baseline_size_bytes": fp16_size_bytes(model),
        "layer_errors": result.layer_errors(), "notes": list(result.notes),
        "prompt": prompt, "new_tokens": new_tokens,
        "generation": lm.generate(result.lm, prompt, new_tokens) if prompt.strip() else "",
    }


def run_methods(model: LanguageModel, configs: Sequence[OneShotConfig], calibration: Tensor | None, evaluation: Tensor,
                prompt: str, new_tokens: int, record: Callable[[int, dict], dict] | None = None
                ) -> Generator[LMProgress, None, None]:
    """Compress, evaluate and sample each config in turn; Cancel (close) stops after the current layer or window.

    `record(index, row)` runs in the job's thread as each method finishes, so its run reaches the history even
    when no page is watching; it returns the row as the page keeps it.
    """
    for index, config in enumerate(configs):
        run = Drive(compress_lm(model, config, calibration))
        for step in run:
            yield LMProgress(index, len(configs), config.label, step)
        measured = Drive(measure_steps(model, run.result, evaluation, prompt, new_tokens))
        for progress in measured:
            yield LMProgress(index, len(configs), config.label, evaluating=progress)
        del run  # the compressed copy goes before the next one is made
        row = measured.result
        yield LMProgress(index, len(configs), config.label, row=record(index, row) if record else row)


class BatchRecord:
    """Every method of a batch in the history from the moment the batch starts, as one run each: in flight, then
    ended by the job's own thread (done with its measurements; cancelled or failed with the batch)."""

    def __init__(self, configs: Sequence[OneShotConfig], meta: dict, owner: str):
        self.meta, self.owner = meta, owner
        self.pending = [Run(kind="lm", model=meta["model"], config={"kind": method_kind(c), **c.to_dict()},
                            metrics={}, details=self.texts(), label=c.label, owner=owner, status=IN_FLIGHT)
                        for c in configs]
        self.ids: list[str | None] = []
        self.error: str | None = None  # why the history cannot be used, if it cannot
        try:
            store = RunStore()
            self.ids = [store.record(run) for run in self.pending]
        except HistoryError as exc:
            self.ids, self.error = [None] * len(self.pending), str(exc)
        self.ended: set[int] = set()

    def texts(self) -> dict:
        """What every run of the batch records about its tokens, so a later visit can tell which runs compare: the
        texts, the evaluation's key and window length, and (as details) the token counts and the noise."""
        measured_on = {k: self.meta.get(k) for k in ("calibration_tokens", "eval_samples")}
        return {**{k: self.meta.get(k) for k in ("eval_key", "calibration", "evaluation", "seq_len")},
                "measured_on": measured_on}

    def done(self, index: int, row: dict) -> dict:
        """Method `index` has finished: its record gets the measurements; returns the row with its run id."""
        row = {**row, **{k: self.meta.get(k) for k in ("spec", "model", "eval_key", "calibration", "evaluation",
                                                       "calibration_tokens")},
               "baseline_perplexity": self.meta.get("dense_perplexity"), "run_id": self.ids[index],
               "history_error": self.error}
        self.ended.add(index)
        if self.ids[index] is None:
            return row
        kept = {k: v for k, v in row.items() if k not in NOT_RECORDED and k not in MEASURED_ON}
        texts = self.texts()
        texts["measured_on"] = {**texts["measured_on"], **{k: row[k] for k in ("windows", "nll_se")}}
        run = run_from_result("lm", row["model"], {**kept, **texts}, row["label"])
        try:
            RunStore().finish(self.ids[index], dataclasses.replace(run, status="done", owner=self.owner))
        except HistoryError as exc:
            row["history_error"] = str(exc)
        return row

    def end(self, job: Job, status: str) -> None:
        """The job's on_end: the methods it did not finish end as the batch did (cancelled before or while they
        ran, or failed with its error)."""
        store = RunStore() if any(self.ids) else None
        for index, (run_id, run) in enumerate(zip(self.ids, self.pending)):
            if run_id is None or index in self.ended:
                continue
            details = {**run.details, **({"error": job.error} if job.error else {})}
            store.finish(run_id, dataclasses.replace(run, status="failed" if status == "done" else status,
                                                     details=details))


def row_from_run(run: Run) -> dict | None:
    """A finished language-model run of the history as a row of the page (None when it measured no perplexity or
    its config is not one the page knows)."""
    metrics, details = run.metrics, run.details
    measured_on = details.get("measured_on") or {}
    if run.status != "done" or not isinstance(metrics.get("perplexity"), (int, float)):
        return None
    try:
        config = config_from_dict(dict(run.config))
    except (ValueError, TypeError):
        return None
    return {
        "method": method_of(config), "series": series_of(config), "label": run.label, "config": dict(run.config),
        "sparsity": metrics.get("sparsity"),
        "bits": getattr(config, "bits", None) or getattr(config, "weight_bits", None),
        "target_sparsity": config.amount if isinstance(config, PruneConfig) else None,
        "perplexity": metrics["perplexity"], "tokens": metrics.get("tokens"),
        "windows": measured_on.get("windows"), "nll_se": measured_on.get("nll_se"), "seconds": metrics.get("seconds"),
        "size_bytes": metrics.get("size_bytes"),
        "baseline_size_bytes": metrics.get("baseline_size_bytes"), "packed": None,
        "layer_errors": details.get("layer_errors") or [], "notes": details.get("notes") or [],
        "prompt": details.get("prompt", ""), "new_tokens": metrics.get("new_tokens"),
        "generation": details.get("generation", ""), "model": run.model,
        "calibration": details.get("calibration") or details.get("calibration_text", ""),
        "evaluation": details.get("evaluation") or details.get("evaluation_text", ""),
        "calibration_tokens": measured_on.get("calibration_tokens"), "eval_key": details.get("eval_key"),
        "seq_len": metrics.get("seq_len"), "run_id": run.id, "created_at": run.created_at, "owner": run.owner,
        "history_error": None,
    }
