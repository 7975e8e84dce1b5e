"""The Language-model page's controls, live RTN, background run and charts (ui/lm_views.py: per-run views)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import pandas as pd
import streamlit as st

from compression.core import InputError, Job, settings
from compression.history import run_from_result
from compression.lm import (
    CORPORA,
    LanguageModel,
    TextSplit,
    calibration_ids,
    corpus_available,
    evaluation_ids,
)
from compression.pipeline import lm_config
from compression.plots import language_model as plots_lm
from compression.quantization import ACT_GRANULARITIES
from ui import history, jobs
from ui.lm_models import UPLOADED_TEXT, dense_perplexity, text_key, text_split
from ui.lm_runs import METHODS, PRUNING, SHORT, LMProgress, configs_for, live_rtn, run_methods, series_of

JOB, META, RESULTS, LIVE, ERROR = "lm_job", "lm_meta", "lm_results", "lm_live", "lm_error"
GROUP_SIZES = (0, 32, 64, 128)
WA_BITS = (8, 6)


@dataclass(frozen=True)
class LMSettings:
    """Everything the page's widgets chose, checked (texts loaded, sizes valid)."""

    spec: str
    methods: tuple[str, ...]
    sparsity: float
    pattern: str
    bits: int
    group_size: int
    alpha: float
    wa_bits: int  # SmoothQuant and naive: weights and activations both at this many bits
    act_granularity: str
    calibration: TextSplit
    evaluation: TextSplit
    calib_samples: int
    eval_samples: int
    seq_len: int
    prompt: str
    new_tokens: int

    @cached_property
    def eval_key(self) -> str:
        """Points are comparable only on the same evaluation tokens: this names them."""
        return f"{text_key(self.evaluation)}|{self.eval_samples}x{self.seq_len}"


def controls(spec: str) -> LMSettings | None:
    """The methods, their settings and the texts; None (with the reason shown) when a setting cannot be used."""
    methods = st.multiselect("Methods", METHODS, default=["magnitude", "wanda", "rtn", "gptq"], key="lm_methods",
                             bind="query-params", help="Each runs on its own copy of the model, one after another.")
    prune, quant, smooth = st.columns(3)
    sparsity = prune.slider("Sparsity (pruning)", 0.1, 0.9, 0.5, 0.05, key="lm_sparsity", bind="query-params",
                            help="Fraction of each linear layer's weights set to zero.")
    pattern = prune.radio("Pattern", ["unstructured", "2:4"], horizontal=True, key="lm_pattern", bind="query-params",
                          help="2:4 keeps 2 of every 4 weights (50%), the pattern sparse tensor cores run fast.")
    bits = quant.slider("Bits (quantization)", 2, 8, 4, key="lm_bits", bind="query-params")
    group = quant.selectbox("Group size", GROUP_SIZES, index=2, key="lm_group", bind="query-params",
                            format_func=lambda g: "per output channel" if g == 0 else f"{g} input columns",
                            help="One scale and zero point per group of weights in a row; smaller groups fit better "
                                 "and cost more bytes.")
    alpha = smooth.slider("SmoothQuant α", 0.0, 1.0, 0.5, 0.05, key="lm_alpha", bind="query-params",
                          help="How much of the activations' range moves into the weights.")
    wa_bits = smooth.radio("Weights · activations", WA_BITS, horizontal=True, key="lm_wa_bits", bind="query-params",
                           format_func=lambda b: f"W{b}A{b}",
                           help="SmoothQuant and naive quantize the norm-fed linears' weights (per output "
                                "channel) and their input activations to this many bits.")
    granularity = smooth.radio("Activation scales", ACT_GRANULARITIES, horizontal=True, key="lm_act_scales",
                               bind="query-params", help="One scale per token, or one for the whole tensor (the "
                               "cheapest kernel, and the one outliers hurt most).")
    texts = [c for c in CORPORA if corpus_available(c)] + [UPLOADED_TEXT]
    t = st.columns([1, 1, 2])
    calib_name = t[0].selectbox("Calibration text", texts, key="lm_calib_text", bind="query-params",
                                help="Wanda, SparseGPT, GPTQ, AWQ and SmoothQuant fit their choices to it.")
    eval_name = t[1].selectbox("Evaluation text", texts, key="lm_eval_text", bind="query-params",
                               help="Perplexity is measured on its held-out last tenth.")
    upload = None
    if UPLOADED_TEXT in (calib_name, eval_name):
        file = t[2].file_uploader("Your text (.txt, UTF-8)", type=["txt"], key="lm_upload",
                                  max_upload_size=settings.max_upload_mb())
        upload = file.getvalue() if file is not None else None
    with st.expander("Sizes and prompt"):
        s = st.columns(4)
        calib_samples = s[0].number_input("Calibration windows", 1, 128, 16, key="lm_calib_samples",
                                          bind="query-params")
        eval_samples = s[1].number_input("Evaluation windows", 1, 64, 16, key="lm_eval_samples", bind="query-params")
        seq_len = s[2].number_input("Tokens per window", 16, 512, 128, 16, key="lm_seq_len", bind="query-params")
        new_tokens = s[3].number_input("Generated tokens", 1, 200, 40, key="lm_new_tokens")
        prompt = st.text_input("Prompt", "In the beginning God created", key="lm_prompt", bind="query-params")
    if calib_name != eval_name:
        st.warning(f"Calibrating on **{calib_name}** and evaluating on **{eval_name}**: the calibrated methods fit "
                   "the statistics of the text they saw, so expect a higher perplexity than with matching texts.")
    try:
        calibration, evaluation = text_split(calib_name, upload), text_split(eval_name, upload)
    except InputError as exc:
        st.error(str(exc))
        return None
    return LMSettings(spec, tuple(methods), sparsity, pattern, bits, group, alpha, int(wa_bits), granularity,
                      calibration, evaluation,
                      int(calib_samples), int(eval_samples), int(seq_len), prompt, int(new_tokens))


def dense(settings: LMSettings):
    """The uncompressed model's perplexity on the evaluation tokens (cached), or None with the reason shown."""
    try:
        return dense_perplexity(settings.spec, settings.evaluation, settings.eval_key, settings.eval_samples,
                                settings.seq_len)
    except InputError as exc:
        st.error(str(exc))
        return None


def run_section(lm: LanguageModel, settings: LMSettings, dense_ppl: float | None) -> None:
    """The Run button; the job itself is polled by `live` below."""
    def start() -> None:
        if jobs.busy(JOB, ERROR, "A run"):
            return
        try:
            if not settings.methods:
                raise InputError("choose at least one method")
            configs = configs_for(settings.methods, settings.sparsity, settings.pattern, settings.bits,
                                  settings.group_size, settings.alpha, settings.wa_bits, settings.act_granularity)
            calib = calibration_ids(lm.tokenizer, settings.calibration.calibration, settings.calib_samples,
                                    settings.seq_len)
            evaluation = evaluation_ids(lm.tokenizer, settings.evaluation.evaluation, settings.eval_samples,
                                        settings.seq_len)
        except InputError as exc:
            st.session_state[ERROR] = str(exc)
            return
        st.session_state[ERROR] = None
        st.session_state[META] = {"status": "running", "spec": settings.spec, "model": lm.info.name,
                                  "eval_key": settings.eval_key, "calibration": settings.calibration.name,
                                  "evaluation": settings.evaluation.name, "seen": 0,
                                  "dense_perplexity": dense_ppl}
        record = _recorder(dict(st.session_state[META]), history.owner())
        st.session_state[JOB] = Job(lambda: run_methods(lm, configs, calib, evaluation, settings.prompt,
                                                        settings.new_tokens, record), label="lm")

    st.button("Run", type="primary", key="lm_run", on_click=start, disabled=not settings.methods,
              help="Compress a copy of the model with each chosen method, layer by layer, in the background")
    if st.session_state.get(ERROR):
        st.error(st.session_state[ERROR])
    # run_every is decided on each script run: poll only while a job runs
    st.fragment(live, run_every=jobs.poll_every(st.session_state.get(JOB)))()


def live() -> None:
    """Progress and Cancel while the job runs; each finished method joins the results (and the history) once."""
    job, meta = st.session_state.get(JOB), st.session_state.get(META)
    if job is None:
        return
    steps: list[LMProgress] = job.steps
    collect(steps, meta)
    last = steps[-1] if steps else None
    jobs.progress_bar(job, last.fraction if last else 0.0, last.text if last else "Starting…", "lm_cancel")
    jobs.settle(job, meta)
    jobs.ended(job, "Cancelled: the methods that had finished stay on the charts.")


def _recorder(meta: dict, who: str):
    """What the job does with each finished method, in its own thread: record it as an "lm" run for `who`."""
    def record(row: dict) -> dict:
        row = {**row, **{k: meta[k] for k in ("spec", "model", "eval_key", "calibration", "evaluation")},
               "baseline_perplexity": meta.get("dense_perplexity")}
        kept = {k: v for k, v in row.items() if k not in ("spec", "eval_key", "series", "method", "label", "packed")}
        row["run_id"], row["history_error"] = history.record_as(run_from_result("lm", row["model"], kept,
                                                                                row["label"]), who)
        return row
    return record


def collect(steps: list[LMProgress], meta: dict) -> None:
    """Keep the rows of methods finished since the last poll (the job has already recorded each)."""
    results = st.session_state.setdefault(RESULTS, [])
    rows = [s.row for s in steps if s.row is not None]
    for row in rows[meta["seen"]:]:
        if row["history_error"]:
            st.session_state["history_error"] = row["history_error"]
        results.append(row)
    meta["seen"] = len(rows)


def session_rows(settings: LMSettings) -> list[dict]:
    """This session's results on the current model and evaluation tokens."""
    return [r for r in st.session_state.get(RESULTS, [])
            if r["spec"] == settings.spec and r["eval_key"] == settings.eval_key]


def charts(settings: LMSettings, dense_ppl: float | None):
    """Perplexity vs sparsity and vs bits; returns the bits chart's placeholder and the points it drew."""
    rows = session_rows(settings)
    left, right = st.columns(2)
    pruned = [{**r, "x": r["target_sparsity"]} for r in rows if r["method"] in PRUNING]
    left.plotly_chart(plots_lm.perplexity_curves(pruned, "x", "sparsity (fraction of linear weights zeroed)",
                                                 "Perplexity vs sparsity", dense_ppl, x_range=(0, 1)),
                      key="lm_chart_sparsity")
    if not pruned:
        left.caption("Run magnitude, Wanda or SparseGPT at a few sparsities: each run adds a point to its line.")
    return right.empty(), [{**r, "x": r["bits"]} for r in rows if r["method"] not in PRUNING]


def bits_chart(slot, points: list[dict], settings: LMSettings, dense_ppl: float | None,
               live: dict | None = None, key: str = "lm_chart_bits") -> None:
    """The bits chart (`key`: the short-slice point and its refinement share one run, so they need two keys)."""
    merged = {(p["series"], p["x"]): p for p in points + live_points(settings)}  # a refined live point replaces
    slot.plotly_chart(plots_lm.perplexity_curves(list(merged.values()), "x", "weight bits",
                                                 "Perplexity vs bits", dense_ppl, live=live,
                                                 x_range=(1.5, 8.5)), key=key)


def live_points(settings: LMSettings) -> list[dict]:
    return [{"method": "rtn", "series": series, "x": bits, "perplexity": ppl, "label": f"{series} {bits}-bit"}
            for (spec, key, series, bits), ppl in st.session_state.get(LIVE, {}).items()
            if spec == settings.spec and key == settings.eval_key]


@dataclass
class LiveRTN:
    """The live RTN point between its short-slice measurement and the full evaluation that replaces it."""

    slot: object  # the bits chart's st.empty()
    points: list[dict]
    dense_ppl: float | None
    label: str = ""
    key: tuple = ()
    refined: object = None  # the live_rtn generator, its next value the full perplexity
    note: object = None


def live_rtn_first(lm: LanguageModel, settings: LMSettings, slot, points: list[dict],
                   dense_ppl: float | None) -> LiveRTN:
    """RTN follows the bits slider: draw the bits chart now, with RTN measured on a short slice if RTN is on."""
    live = LiveRTN(slot, points, dense_ppl)
    if "rtn" not in settings.methods:
        bits_chart(slot, points, settings, dense_ppl)
        return live
    config = lm_config("rtn", bits=settings.bits, group_size=settings.group_size)
    live.label, live.key = f"live: {config.label}", (settings.spec, settings.eval_key, series_of(config), config.bits)
    done = st.session_state.setdefault(LIVE, {})
    if live.key in done:
        bits_chart(slot, points, settings, dense_ppl, {"x": config.bits, "perplexity": done[live.key],
                                                       "label": live.label})
        return live
    bits_chart(slot, points, settings, dense_ppl, key="lm_chart_bits_wait")  # the chart at once, RTN point next
    try:
        short = evaluation_ids(lm.tokenizer, settings.evaluation.evaluation, *SHORT)
        full = evaluation_ids(lm.tokenizer, settings.evaluation.evaluation, settings.eval_samples, settings.seq_len)
        live.refined = live_rtn(lm, config, short, full)
        quick = next(live.refined)
    except InputError as exc:
        st.error(str(exc))
        bits_chart(slot, points, settings, dense_ppl)
        live.refined = None
        return live
    # Both measured on the same short slice: a few hundred tokens give a noisy perplexity, so the dense model's
    # value on those very tokens is the fair reference until the full evaluation below replaces the point.
    dense_short = dense_perplexity(settings.spec, settings.evaluation, f"{text_key(settings.evaluation)}|short",
                                   *SHORT)
    bits_chart(slot, points, settings, dense_ppl, {
        "x": config.bits, "perplexity": quick.perplexity,
        "label": f"{live.label}: first {quick.tokens} tokens (dense there {dense_short.perplexity:.1f})"},
        key="lm_chart_bits_quick")
    live.note = st.empty()
    live.note.caption(f"Live RTN on the first {quick.tokens} tokens: perplexity {quick.perplexity:.2f} against "
                      f"{dense_short.perplexity:.2f} for the dense model on the same tokens "
                      f"(×{quick.perplexity / dense_short.perplexity:.3f}); measuring the full evaluation below…")
    return live


def live_rtn_refine(live: LiveRTN, settings: LMSettings) -> None:
    """Replace the short-slice point by the full evaluation (last on the page: everything else is drawn first)."""
    if live.refined is None:
        return
    full = next(live.refined)
    st.session_state.setdefault(LIVE, {})[live.key] = full.perplexity
    bits_chart(live.slot, live.points, settings, live.dense_ppl, {"x": settings.bits, "perplexity": full.perplexity,
                                                                  "label": live.label})
    live.note.caption(f"Live RTN: perplexity {full.perplexity:.2f} on {full.tokens:,} tokens.")


def results_table(settings: LMSettings, dense_ppl: float | None) -> None:
    rows = session_rows(settings)
    if not rows:
        st.info("Choose methods and press **Run**: each finished method adds a point to the charts above.")
        return
    table = pd.DataFrame([{"method": r["label"], "perplexity": r["perplexity"],
                           "vs dense": r["perplexity"] / dense_ppl if dense_ppl else None,
                           "zero weights": r["sparsity"], "packed MiB": r["size_bytes"] / 2**20,
                           "of fp16": r["size_bytes"] / r["baseline_size_bytes"], "seconds": r["seconds"],
                           "calibration": r["calibration"], "run": r["run_id"]} for r in rows])
    st.dataframe(table, hide_index=True, key="lm_table", column_config={
        "perplexity": st.column_config.NumberColumn(format="%.2f"),
        "vs dense": st.column_config.NumberColumn(format="%.2f×"),
        "zero weights": st.column_config.NumberColumn(format="percent"),
        "packed MiB": st.column_config.NumberColumn(format="%.2f"),
        "of fp16": st.column_config.NumberColumn(format="percent"),
        "seconds": st.column_config.NumberColumn(format="%.1f")})
    history.show_error()
