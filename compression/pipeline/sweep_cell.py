"""One sweep cell, run wherever a backend puts it: load the model from its own source (the zoo cache, a Hugging
Face folder, a GGUF file; never an object handed over), compress it as the cell says, measure it, and return a
plain record (JSON values only) that the sweep's driver turns into a run in the history.

A process keeps the last language model it loaded (and that model's dense perplexity per evaluation), so the cells
a worker runs one after another on the same model read it once; the copy each cell compresses is its own.
"""

from __future__ import annotations

import os
import resource
import socket
import threading
import time
from collections.abc import Callable

from compression.calibration import calibration_images
from compression.core import Drive
from compression.core.threads import use_threads
from compression.lm import (
    LanguageModel,
    calibration_ids,
    evaluation_ids,
    load_language_model,
    load_text,
    max_positions,
    perplexity,
)
from compression.models import load_zoo
from compression.pipeline.lm import compress_lm, fp16_size_bytes, lm_config, method_kind, packed_size_bytes
from compression.pipeline.sweep import LANGUAGE_MODEL, PRUNE_METHODS, SweepCell
from compression.pruning import PruneConfig, prune
from compression.quantization import QuantConfig, quantize

Report = Callable[[float, str], None]

_lock = threading.Lock()
_lm: dict[str, LanguageModel] = {}  # the last language model this process loaded, by its name in the cell
_dense: dict[tuple, dict] = {}  # (model, evaluation) -> the dense model's perplexity on it


def run_cell(payload: dict, report: Report | None = None) -> dict:
    """Run the cell `payload` (SweepCell.to_dict()) and return its record: the history's kind, model and label,
    the measured `result` (as the CLI records it), `timing` (wall times: entered, model loaded, ended) and the
    `worker` it ran on (host, pid, peak resident memory)."""
    report = report or (lambda fraction, text: None)
    entered = time.time()
    threads = use_threads()  # each task sets its own: a worker thread starts with torch's default team
    cell = SweepCell.from_dict(payload)
    report(0.0, "loading the model")
    if cell.family == LANGUAGE_MODEL:
        name, result, loaded = _language_model(cell, report)
    else:
        name, result, loaded = _classifier(cell, report)
    ended = time.time()
    report(1.0, "done")
    return {"id": cell.id, "kind": cell.kind, "model": name, "label": cell.label, "result": result,
            "timing": {"entered_at": entered, "loaded_at": loaded, "ended_at": ended, "load_s": loaded - entered,
                       "seconds": ended - entered},
            "worker": {"host": socket.gethostname(), "pid": os.getpid(), "threads": threads, "device": cell.device,
                       "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}}


def _classifier(cell: SweepCell, report: Report) -> tuple[str, dict, float]:
    model = load_zoo(cell.model)  # the zoo cache (trained into it on first use)
    loaded = time.time()
    calibration = calibration_images(model.dataset, cell.calibration_samples) if cell.calibration_samples else None
    report(0.2, f"{cell.label}: compressing and measuring")
    if cell.method in PRUNE_METHODS:
        result = prune(model, PruneConfig(amount=cell.sparsity, method=cell.method), calibration).to_dict()
    else:
        config = QuantConfig(bits=cell.bits, granularity="per-group" if cell.group_size else "per-channel",
                             group_size=cell.group_size or 64, method=cell.method)
        result = quantize(model, config, calibration=calibration).to_dict()
    if calibration is not None:
        result["calibration_samples"] = cell.calibration_samples
    return model.name, result, loaded


def _language_model(cell: SweepCell, report: Report) -> tuple[str, dict, float]:
    lm = _load_lm(cell.model)
    loaded = time.time()
    evaluation = load_text(cell.evaluation)
    seq_len = min(cell.seq_len, max_positions(lm))
    eval_ids = evaluation_ids(lm.tokenizer, evaluation.evaluation, cell.eval_samples, seq_len)
    config = lm_config(cell.method, cell.sparsity or 0.5, cell.nm, cell.bits or 4, cell.group_size or 0)
    calibration, calib_ids = None, None
    if cell.calibration_samples:
        calibration = load_text(cell.calibration_text)
        calib_ids = calibration_ids(lm.tokenizer, calibration.calibration, cell.calibration_samples, seq_len,
                                    cell.seed)
    run = Drive(compress_lm(lm, config, calib_ids, cell.device))
    for step in run:
        report(0.8 * step.fraction, f"{cell.label}: layer {step.index + 1} of {step.blocks}")
    report(0.8, f"{cell.label}: perplexity")
    measured = perplexity(run.result.lm.model, eval_ids)
    dense = _dense_perplexity(cell, lm, eval_ids)
    result = {"model_info": lm.info.to_dict(), **run.result.to_dict(),
              "config": {"kind": method_kind(config), **config.to_dict()},
              "perplexity": measured.perplexity, "tokens": measured.tokens, "top1_accuracy": measured.top1,
              "baseline_perplexity": dense["perplexity"], "baseline_top1_accuracy": dense["top1"],
              "size_bytes": packed_size_bytes(run.result), "baseline_size_bytes": fp16_size_bytes(lm),
              "evaluation_text": evaluation.name, "seq_len": seq_len,
              "calibration_text": calibration.name if calibration is not None else cell.calibration_text}
    return lm.info.name, result, loaded


def _load_lm(spec: str) -> LanguageModel:
    """The language model `spec` names, read once per process (the previous one let go first)."""
    with _lock:
        if spec not in _lm:
            _lm.clear()
            _dense.clear()
            _lm[spec] = load_language_model(spec)
        return _lm[spec]


def _dense_perplexity(cell: SweepCell, lm: LanguageModel, eval_ids) -> dict:
    key = (cell.model, cell.evaluation, cell.eval_samples, cell.seq_len, cell.device)
    with _lock:
        known = _dense.get(key)
    if known is None:
        dense = perplexity(lm.model.to(cell.device), eval_ids)
        known = {"perplexity": dense.perplexity, "top1": dense.top1}
        with _lock:
            _dense[key] = known
    return known
