"""The Language-model page's "What it buys" section: each chosen method's model measured on real kernels beside the
dense model (decode and prefill speed at batch 1, peak memory, bytes read per token), quality against tokens/s, and
estimates for device classes (labelled as estimates).

Measuring takes seconds per method, so it is a background job of its own started by a button (never a rerun): it
compresses each method again with the page's settings, measures it, and records it as a language-model run.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass

import pandas as pd
import streamlit as st
from torch import Tensor

from compression.calibration import BlockStep
from compression.core import Drive, InputError, Job, settings
from compression.core.hardware import DEVICES, FITS, PREDICTION, devices_from_rows, estimate, measure_bandwidth
from compression.history import run_from_result
from compression.lm import LanguageModel, calibration_ids, evaluation_ids, perplexity
from compression.pipeline import (HEADS, CostConfig, OneShotConfig, compress_lm, deploy_dense, lm_config,
                                  measure_cost, method_of, prompt_ids, run_cost)
from compression.plots import lm_cost as plots_cost
from ui import history, jobs

JOB, META, ROWS, ERROR = "lm_cost_job", "lm_cost_meta", "lm_cost_rows", "lm_cost_error"
HEAD, DEVICE_TABLE = "lm_cost_head", "lm_devices"
MIB = 2 ** 20


@dataclass(frozen=True)
class CostProgress:
    """Method `index` of `total`: compressing (at `step`), measuring, or done (`row` holds its figures)."""

    index: int
    total: int
    label: str
    step: BlockStep | None = None
    row: dict | None = None

    @property
    def fraction(self) -> float:
        within = 0.3 * self.step.fraction if self.step is not None else 1.0 if self.row is not None else 0.3
        return (self.index + within) / self.total

    @property
    def text(self) -> str:
        where = (f"compressing, layer {self.step.index + 1}/{self.step.blocks}" if self.step is not None else
                 "measured" if self.row is not None else "measuring speed and memory (a process of its own)")
        return f"{self.label} ({self.index + 1} of {self.total}): {where}"


def measure_methods(lm: LanguageModel, configs: Sequence[OneShotConfig], calibration: Tensor | None,
                    evaluation: Tensor, cost: CostConfig, head: str) -> Generator[CostProgress, None, None]:
    """Compress each config, then measure what it buys beside the dense model (measured once); Cancel stops after
    the current step. Each finished method comes out as a row of numbers (no model is kept)."""
    dense, bandwidth = None, None
    for index, config in enumerate(configs):
        run = Drive(compress_lm(lm, config, calibration if config.needs_calibration else None))
        for step in run:
            yield CostProgress(index, len(configs), config.label, step)
        yield CostProgress(index, len(configs), config.label)
        if dense is None:
            bandwidth = measure_bandwidth()
            dense = measure_cost(deploy_dense(lm.model), prompt_ids(lm.model, evaluation, cost), cost)
        quality = perplexity(run.result.lm.model, evaluation)
        row = {"method": method_of(config), "label": config.label, "perplexity": quality.perplexity,
               "top1_accuracy": quality.top1, "tokens": quality.tokens,
               **run_cost(lm, run.result, evaluation, cost, dense, bandwidth, head).to_dict()}
        del run  # the compressed copy goes before the next one is made
        yield CostProgress(index, len(configs), config.label, row=row)


def head() -> str:
    return st.session_state.get(HEAD, "float")


def section(lm: LanguageModel, chosen, dense_ppl: float | None) -> None:
    """The button and its job, the cost table, the chart and the device estimates (`chosen`: the page's
    LMSettings: methods, their settings, texts and sizes)."""
    st.subheader("What it buys")
    left, right = st.columns([2, 1])
    right.radio("Output head", HEADS, horizontal=True, key=HEAD,
                format_func=lambda h: {"float": "as the run left it", "int8": "int8 (measured apart)"}[h],
                help="The compression methods leave the output head float. Rounding it to int8 reads far fewer "
                     "bytes per token; the perplexity is then measured with it.")

    def start() -> None:
        if jobs.busy(JOB, ERROR, "A measurement"):
            return
        try:
            if not chosen.methods:
                raise InputError("choose at least one method")
            nm = (2, 4) if chosen.pattern == "2:4" else None
            configs = [lm_config(m, chosen.sparsity, nm, chosen.bits, chosen.group_size, chosen.alpha,
                                 chosen.wa_bits, chosen.act_granularity) for m in chosen.methods]
            calibration = calibration_ids(lm.tokenizer, chosen.calibration.calibration, chosen.calib_samples,
                                          chosen.seq_len)
            evaluation = evaluation_ids(lm.tokenizer, chosen.evaluation.evaluation, chosen.eval_samples,
                                        chosen.seq_len)
        except InputError as exc:
            st.session_state[ERROR] = str(exc)
            return
        st.session_state[ERROR] = None
        cost, chosen_head = CostConfig(threads=settings.torch_threads()), head()
        st.session_state[META] = {"status": "running", "seen": 0, "spec": chosen.spec,
                                  "eval_key": chosen.eval_key, "model": lm.info.name, "who": history.owner(),
                                  "calibration": chosen.calibration.name, "evaluation": chosen.evaluation.name,
                                  "dense_perplexity": dense_ppl}
        st.session_state[JOB] = Job(lambda: measure_methods(lm, configs, calibration, evaluation, cost, chosen_head),
                                    label="lm-cost")

    left.button("Measure speed and memory", key="lm_cost_run", on_click=start, disabled=not chosen.methods,
                help="Compress each chosen method again with these settings and run it on real low-bit kernels "
                     "where its grid maps, in a process of its own, beside the dense float32 model: about 10 to "
                     "30 s per method on SmolLM2.")
    if st.session_state.get(ERROR):
        st.error(st.session_state[ERROR])
    st.fragment(live, run_every=jobs.poll_every(st.session_state.get(JOB)))()
    rows = [r for r in st.session_state.get(ROWS, [])
            if r["spec"] == chosen.spec and r["eval_key"] == chosen.eval_key]
    show(rows, dense_ppl)


def live() -> None:
    """Progress and Cancel while measuring; each finished method is recorded in the history and kept (once)."""
    job, meta = st.session_state.get(JOB), st.session_state.get(META)
    if job is None:
        return
    steps: list[CostProgress] = job.steps
    rows = [s.row for s in steps if s.row is not None]
    kept = st.session_state.setdefault(ROWS, [])
    for row in rows[meta["seen"]:]:
        recorded = {k: v for k, v in row.items() if k not in ("method", "label")}
        recorded.update({"calibration": meta["calibration"], "evaluation": meta["evaluation"],
                         "baseline_perplexity": meta["dense_perplexity"]})
        run_id, error = history.record_as(run_from_result("lm", meta["model"], recorded, row["label"]), meta["who"])
        if error:
            st.session_state["history_error"] = error
        kept.append({**row, "spec": meta["spec"], "eval_key": meta["eval_key"], "run_id": run_id})
    meta["seen"] = len(rows)
    last = steps[-1] if steps else None
    jobs.progress_bar(job, last.fraction if last else 0.0, last.text if last else "Starting…", "lm_cost_cancel")
    jobs.settle(job, meta)
    jobs.ended(job, "Cancelled: the methods measured so far stay in the table.", "The measurement failed")


def show(measured: list[dict], dense_ppl: float | None) -> None:
    """The cost table, the chart and the device estimates of this session's measured methods."""
    if not measured:
        st.caption(f"Press **Measure speed and memory**: each chosen method is then timed at batch 1 with "
                   f"{settings.torch_threads()} thread(s) (the server's policy), its peak memory measured, and its "
                   "bytes read per token computed.")
        return
    dense = measured[-1]["cost"]["dense"]
    headline(measured)
    number = st.column_config.NumberColumn
    st.dataframe(cost_table(measured, dense, dense_ppl), hide_index=True, key="lm_cost_table", column_config={
        "decode tok/s": number(format="%.1f"), "× dense": number(format="%.2f×"), "prefill tok/s": number(format="%.0f"),
        "weights MiB/token (computed)": number(format="%.1f"), "model MiB (measured)": number(format="%.0f"),
        "process peak MiB": number(format="%.0f"), "estimate tok/s": number(format="%.0f"),
        "estimate here tok/s": number(format="%.0f"),
        "perplexity": number(format="%.2f"), "perplexity, real kernels": number(format="%.2f"),
        "top-1": number(format="percent")})
    st.caption(f"Decode and prefill: batch 1, {dense['threads']} thread(s), median of {dense['repeats']} repeats "
               f"[slowest–fastest] of {dense['new_tokens']} greedy tokens with the KV cache after a "
               f"{dense['prompt_tokens']}-token prompt. Model memory: the peak resident memory of a process running "
               "only this model, less that process before it read the model (its Python runtime, "
               f"{(dense['runtime_rss_bytes'] or 0) / MIB:,.0f} MiB here; process peak beside it). Bytes per token are "
               "computed from the tensors the model reads, not timed. Estimate tok/s = this machine's copy bandwidth ÷ bytes "
               "read per token (weights + KV cache): an estimate, not a measurement, and an upper bound: it leaves out "
               "the work per token that does not shrink with the weights (attention, norms, kernel launches), so it "
               "runs further ahead of the measured figure the smaller the model reads. Estimate here tok/s = 1 ÷ "
               "(the weights' bytes ÷ that bandwidth + the time per token measured outside the weight layers, timed "
               "by hooks in one more decode): also an estimate; where it runs ahead of the measured figure, the "
               "weight layers' kernels are slower than reading their bytes.")
    def model_bytes(cost: dict) -> float | None:
        mib = model_mib(cost)
        return mib * MIB if mib else None

    points = [{"label": "dense float32", "tokens_per_s": dense["decode_tokens_per_s"], "perplexity": dense_ppl,
               "memory_bytes": model_bytes(dense), "dense": True}] if dense_ppl else []
    points += [{"label": r["label"], "tokens_per_s": r["decode_tokens_per_s"],
                "perplexity": r.get("real_perplexity") or r["perplexity"], "memory_bytes": model_bytes(r["cost"]["run"])}
               for r in measured]
    st.plotly_chart(plots_cost.quality_vs_speed(points), key="lm_cost_chart")
    devices(measured)
    for note in dict.fromkeys(n for r in measured for n in r["cost"]["notes"]):
        st.caption(note)


def headline(rows: list[dict]) -> None:
    """'runs N× faster, needs M MiB, fits X' for the fastest measured run."""
    best = max(rows, key=lambda r: r["decode_speedup"])
    fits = [d["device"] for d in best["cost"]["devices"] if d["fits"]]
    memory = (f", needs {model_mib(best['cost']['run']):,.0f} MiB for the model (dense "
              f"{model_mib(best['cost']['dense']):,.0f} MiB, measured)") if best.get("peak_memory_bytes") else ""
    st.markdown(f"**{best['label']}** on {best['kernel']} decodes **{best['decode_speedup']:.2f}×** as fast as the "
                f"dense float32 model ({best['decode_tokens_per_s']:.1f} vs {best['dense_decode_tokens_per_s']:.1f} "
                f"tokens/s, measured){memory}; it fits (estimate): {', '.join(fits) or 'none of the devices below'}.")
    slower = [r for r in rows if r["decode_speedup"] < 1 and r["kernel"].startswith(("int4", "int8"))]
    for r in slower:
        st.warning(f"{r['label']} on {r['kernel']} is slower than dense here: {r['decode_tokens_per_s']:.1f} vs "
                   f"{r['dense_decode_tokens_per_s']:.1f} tokens/s (measured).")


def model_mib(cost: dict) -> float | None:
    """A measured cost's model memory: the process's peak less the process before it read the model, in MiB."""
    if not cost.get("peak_rss_bytes") or cost.get("runtime_rss_bytes") is None:
        return None
    return (cost["peak_rss_bytes"] - cost["runtime_rss_bytes"]) / MIB


def cost_table(rows: list[dict], dense: dict, dense_ppl: float | None) -> pd.DataFrame:
    def spread(low: float, high: float) -> str:
        return f"{low:.1f}–{high:.1f}"

    table = [{"run": "dense float32", "kernel": "float32", "decode tok/s": dense["decode_tokens_per_s"],
              "range": spread(dense["decode_tokens_per_s_min"], dense["decode_tokens_per_s_max"]), "× dense": 1.0,
              "prefill tok/s": dense["prefill_tokens_per_s"],
              "weights MiB/token (computed)": dense["weight_bytes_per_token"] / MIB,
              "model MiB (measured)": model_mib(dense), "process peak MiB": (dense["peak_rss_bytes"] or 0) / MIB or None,
              "estimate tok/s": rows[-1].get("dense_predicted_decode_tokens_per_s"),
              "estimate here tok/s": rows[-1].get("dense_predicted_decode_tokens_per_s_here"),
              "perplexity": dense_ppl, "perplexity, real kernels": None, "top-1": None}]
    for r in rows:
        table.append({"run": r["label"], "kernel": r["kernel"], "decode tok/s": r["decode_tokens_per_s"],
                      "range": spread(r["decode_tokens_per_s_min"], r["decode_tokens_per_s_max"]),
                      "× dense": r["decode_speedup"], "prefill tok/s": r["prefill_tokens_per_s"],
                      "weights MiB/token (computed)": r["weight_bytes_per_token"] / MIB,
                      "model MiB (measured)": model_mib(r["cost"]["run"]),
                      "process peak MiB": (r.get("peak_memory_bytes") or 0) / MIB or None,
                      "estimate tok/s": r.get("predicted_decode_tokens_per_s"),
                      "estimate here tok/s": r.get("predicted_decode_tokens_per_s_here"), "perplexity": r["perplexity"],
                      "perplexity, real kernels": r.get("real_perplexity"),
                      "top-1": r.get("real_top1_accuracy", r.get("top1_accuracy"))})
    return pd.DataFrame(table)


def devices(rows: list[dict]) -> None:
    """The editable device table and, per run, fits in memory? and estimated tokens/s on each device."""
    st.markdown("**On other devices** (estimates from published figures; edit the table to add yours)")
    edited = st.data_editor(pd.DataFrame([d.to_dict() for d in DEVICES]), num_rows="dynamic", key=DEVICE_TABLE,
                            hide_index=True, column_config={
                                "bandwidth_gb_s": st.column_config.NumberColumn("bandwidth GB/s", min_value=0.001),
                                "memory_gib": st.column_config.NumberColumn("memory GiB", min_value=0.001)})
    try:
        chosen = devices_from_rows(edited.to_dict("records"))
    except InputError as exc:
        st.error(str(exc))
        return
    table = []
    for r in rows:
        needed = r["cost"]["devices"][0]["needed_bytes"] if r["cost"]["devices"] else None
        per_token = r["weight_bytes_per_token"] + r["kv_bytes_per_token"]
        for device in chosen:
            e = estimate(device, needed, per_token)
            table.append({"run": r["label"], "device": device.name, "fits? (estimate)": "yes" if e.fits else "no",
                          "needs MiB (estimate)": e.needed_bytes / MIB, "tokens/s (estimate)": e.tokens_per_s})
    st.dataframe(pd.DataFrame(table), hide_index=True, key="lm_device_estimates", column_config={
        "needs MiB (estimate)": st.column_config.NumberColumn(format="%.1f"),
        "tokens/s (estimate)": st.column_config.NumberColumn(format="%.0f")})
    st.caption(f"Fits? An {FITS}. Tokens/s: an {PREDICTION}, with the device's published bandwidth.")
