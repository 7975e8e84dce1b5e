"""`sweep`: a grid of one-shot settings over one model, each cell a task (this process, or the Ray cluster
$COMPRESSION_LAB_RAY_ADDRESS or --ray names), each finished cell recorded in the history and printed (--json: one
JSON line per cell). The same command again resumes: the cells the history holds are skipped."""

from __future__ import annotations

import json
import sys

from compression.core import Drive, InputError
from compression.core.backends import LocalBackend, RayBackend, ray_address
from compression.history import HistoryError, RunStore
from compression.lm import MODEL_NAMES
from compression.models import ZOO
from compression.pipeline import (
    LANGUAGE_MODEL,
    CellState,
    SweepGrid,
    SweepSettings,
    estimate_sweep,
    expand_sweep,
    run_sweep,
    sweep_family,
)

SHOWN = ("accuracy", "baseline_accuracy", "perplexity", "baseline_perplexity", "size_bytes", "baseline_size_bytes",
         "sparsity", "top1_accuracy", "tokens")


def register(sub) -> None:
    parser = sub.add_parser("sweep", help="run a grid of one-shot compression settings over one model")
    parser.add_argument("--model", required=True,
                        help=f"a zoo model ({', '.join(ZOO)}), or a language model: {', '.join(MODEL_NAMES)}, a "
                             "Hugging Face folder or a .gguf file (each cell loads it itself)")
    parser.add_argument("--methods", required=True, type=_names,
                        help="comma-separated: magnitude, wanda, sparsegpt (pruning); rtn, gptq, awq (quantization)")
    parser.add_argument("--sparsities", type=_floats, default=(0.5,), help="pruning: e.g. 0.5,0.7,0.9")
    parser.add_argument("--patterns", type=_names, default=("unstructured",),
                        help="language models: unstructured and/or 2:4 (2:4 keeps two of every four inputs)")
    parser.add_argument("--bits", type=_ints, default=(4,), help="quantization: e.g. 2,3,4")
    parser.add_argument("--group-sizes", type=_ints, default=None,
                        help="quantization: inputs per group, 0 for one grid per output channel (default: 0 for "
                             "classifiers, 64 for language models)")
    parser.add_argument("--calibration-texts", type=_names, default=("kjv",),
                        help="language models, calibrated methods: kjv, fortunes or .txt files")
    parser.add_argument("--calibration-samples", type=_ints, default=None,
                        help="calibrated methods: images (classifiers, default 512) or windows (language models, "
                             "default 16)")
    parser.add_argument("--text", default="kjv", help="language models: the evaluation text (its last tenth)")
    parser.add_argument("--eval-samples", type=int, default=16, help="language models: evaluation windows")
    parser.add_argument("--seq-len", type=int, default=128, help="language models: tokens per window")
    parser.add_argument("--seed", type=int, default=0, help="language models: where calibration windows are cut")
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="run the cells on this Ray cluster (auto, or host:port; default: "
                             "$COMPRESSION_LAB_RAY_ADDRESS, else this process)")
    parser.add_argument("--local-slots", type=int, default=1,
                        help="without Ray: cells at once in this process (default 1)")
    parser.add_argument("--plan", action="store_true",
                        help="print the grid's size and an estimate of its time, run nothing")
    parser.add_argument("--no-record", action="store_true",
                        help="do not record the cells (nor skip those an earlier run recorded)")
    parser.add_argument("--json", action="store_true", help="one JSON line per cell")
    parser.set_defaults(func=run)


def _names(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(p) for p in _names(text))
    except ValueError:
        raise InputError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in _names(text))
    except ValueError:
        raise InputError(f"expected comma-separated whole numbers, got {text!r}") from None


def run(args) -> int:
    family = sweep_family(args.model)
    lm = family == LANGUAGE_MODEL
    grid = SweepGrid(methods=args.methods, sparsities=args.sparsities, patterns=args.patterns, bits=args.bits,
                     group_sizes=args.group_sizes or ((64,) if lm else (0,)),
                     calibration_texts=args.calibration_texts,
                     calibration_samples=args.calibration_samples or ((16,) if lm else (512,)))
    settings = SweepSettings(args.text, args.eval_samples, args.seq_len, args.seed)
    expand_sweep(args.model, family, grid, settings)  # a bad grid is refused before a cluster is joined
    store = None if args.no_record else _store()
    address = args.ray or ray_address()
    backend = RayBackend(address) if address else LocalBackend(args.local_slots)
    try:
        sweep = expand_sweep(args.model, family, grid, settings, device=backend.device)
        done = {r.id for r in store.runs(sweep=sweep.id) if r.status == "done"} if store else set()
        guess = estimate_sweep(sweep, store.runs() if store else [], backend.slots, sorted(done))
        plan = {"sweep": sweep.id, "model": args.model, "cells": len(sweep), "in_history": len(done),
                "backend": backend.name, "estimate_s": round(guess.seconds, 1), "estimate_basis": guess.basis}
        if args.plan or not args.json:
            print(json.dumps(plan) if args.json else
                  f"sweep {sweep.id}: {len(sweep)} cells of {args.model} ({len(done)} in the history already) on "
                  f"{backend.name}; estimated time {guess.duration}, from {guess.basis}",
                  file=sys.stdout if args.plan else sys.stderr)
        if args.plan:
            return 0
        failed = _drive(run_sweep(sweep, backend, store), args.json)
    finally:
        backend.close()
    return 1 if failed else 0


def _store() -> RunStore | None:
    try:
        return RunStore()
    except HistoryError as exc:
        print(f"warning: the cells will not be recorded: {exc}", file=sys.stderr)
        return None


def _drive(states, as_json: bool) -> int:
    """Print each cell once, as it ends (skipped cells first); returns how many failed."""
    shown: set[str] = set()
    run = Drive(states)
    last = None
    for state in run:
        last = state
        for cell in state.cells:
            if cell.status in ("done", "failed", "skipped") and cell.cell.id not in shown:
                shown.add(cell.cell.id)
                _print(state.sweep.id, cell, as_json)
        if state.history_error:
            print(f"warning: not recorded: {state.history_error}", file=sys.stderr)
    failed = last.count("failed") if last else 0
    if not as_json and last is not None:
        print(f"{last.count('done')} cells done, {last.count('skipped')} skipped (in the history), {failed} failed",
              file=sys.stderr)
    return failed


def _print(sweep_id: str, state: CellState, as_json: bool) -> None:
    cell, record = state.cell, state.record or {}
    metrics = {k: v for k, v in state.metrics.items() if k in SHOWN}
    line = {"sweep": sweep_id, "cell": cell.id, "label": cell.label, "status": state.status, "method": cell.method,
            "sparsity": cell.sparsity, "nm": list(cell.nm) if cell.nm else None, "bits": cell.bits,
            "group_size": cell.group_size, "calibration_text": cell.calibration_text or None,
            "calibration_samples": cell.calibration_samples or None, **metrics,
            "seconds": (record.get("timing") or {}).get("seconds"), "worker": (record.get("worker") or {}),
            "run_id": record.get("run_id"), "recorded": state.recorded, "error": state.error}
    if as_json:
        print(json.dumps(line, sort_keys=True), flush=True)
        return
    quality = f"perplexity {metrics['perplexity']:.2f}" if "perplexity" in metrics else \
        f"accuracy {metrics['accuracy']:.4f}" if "accuracy" in metrics else state.error or ""
    print(f"{cell.label:<40} {state.status:<8} {quality}", flush=True)
