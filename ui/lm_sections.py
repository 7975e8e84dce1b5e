"""The Language-model page's controls, background run, the runs it shows (this session's and the history's) and its
charts (ui/lm_live.py: the live RTN point; ui/lm_views.py: one run in detail; ui/lm_why.py: why each method works)."""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from functools import cached_property

import pandas as pd
import streamlit as st

from compression.core import InputError, Job, settings
from compression.history import HistoryError, RunStore
from compression.lm import (CORPORA, LanguageModel, Perplexity, TextSplit, calibration_ids, corpus_available,
                            evaluation_ids, perplexity_interval)
from compression.pipeline import config_from_dict
from compression.plots import language_model as plots_lm
from compression.quantization import ACT_GRANULARITIES
from ui import history, jobs
from ui.lm_models import UPLOADED_TEXT, dense_perplexity, evaluation_key, recorded_key, text_key, text_split
from ui.lm_runs import (METHODS, PRUNING, W_A, BatchRecord, LMProgress, configs_for, plotted, row_from_run,
                        run_methods)
from ui.lm_views import PICKED

JOB, META, RESULTS, LIVE, ERROR, BUSY = "lm_job", "lm_meta", "lm_results", "lm_live", "lm_error", "lm_busy"
GROUP_SIZES = (0, 32, 64, 128)
WA_BITS = (8, 6)
SOURCES = {"all": "all recorded", "mine": "mine", "session": "this session"}  # the labels are what the URL keeps


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
    source: str  # which recorded runs the charts show: all, mine, session

    @cached_property
    def eval_key(self) -> str:
        """Points are comparable only on the same evaluation tokens: this names them."""
        return evaluation_key(self.evaluation, self.eval_samples, self.seq_len)


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
    with st.expander("Sizes, prompt and which recorded runs to show"):
        s = st.columns(4)
        calib_samples = s[0].number_input("Calibration windows", 1, 128, 16, key="lm_calib_samples",
                                          bind="query-params")
        eval_samples = s[1].number_input("Evaluation windows", 1, 64, 16, key="lm_eval_samples", bind="query-params")
        seq_len = s[2].number_input("Tokens per window", 16, 512, 128, 16, key="lm_seq_len", bind="query-params")
        new_tokens = s[3].number_input("Generated tokens", 1, 200, 40, key="lm_new_tokens")
        prompt = st.text_input("Prompt", "In the beginning God created", key="lm_prompt", bind="query-params")
        source = st.radio("Runs on the charts", list(SOURCES), format_func=SOURCES.get, horizontal=True,
                          key="lm_source", bind="query-params",
                          help="Every run is recorded in the server's history (Compare lists them): all recorded "
                               "runs of this model on these evaluation tokens (a teacher's prepared set, the "
                               "class's), only the ones you recorded, or only this session's.")
    if calib_name != eval_name:
        st.warning(f"Calibrating on **{calib_name}** and evaluating on **{eval_name}**: the calibrated methods fit "
                   "the statistics of the text they saw, so expect a higher perplexity than with matching texts.")
    try:
        calibration, evaluation = text_split(calib_name, upload), text_split(eval_name, upload)
    except InputError as exc:
        st.error(str(exc))
        return None
    return LMSettings(spec, tuple(methods), sparsity, pattern, bits, group, alpha, int(wa_bits), granularity,
                      calibration, evaluation, int(calib_samples), int(eval_samples), int(seq_len), prompt,
                      int(new_tokens), source)


def dense(settings: LMSettings) -> Perplexity | None:
    """The uncompressed model's perplexity on the evaluation tokens (cached), or None with the reason shown."""
    try:
        return dense_perplexity(settings.spec, settings.evaluation, text_key(settings.evaluation),
                                settings.eval_samples, settings.seq_len)
    except InputError as exc:
        st.error(str(exc))
        return None


def noise(ppl: Perplexity) -> str:
    """How far perplexity on these tokens could move on other windows of the same text: '±' in words."""
    interval = ppl.interval()
    if interval is None:
        return f"one window of {ppl.tokens:,} tokens gives no measure of its noise: use more windows"
    return (f"95% range {interval[0]:.2f}–{interval[1]:.2f} from the spread of its {ppl.windows} windows: "
            "differences inside that range may be the text, not the method")


def run_section(lm: LanguageModel, settings: LMSettings, dense_ppl: float | None) -> None:
    """The Run button; the job itself is polled by `live` below."""
    def start() -> None:
        if jobs.busy(JOB, BUSY, "A run"):
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
        st.session_state[PICKED] = None  # the detail follows the new batch's runs as they finish
        st.session_state[META] = {"status": "running", "spec": settings.spec, "model": lm.info.name,
                                  "eval_key": settings.eval_key, "calibration": settings.calibration.name,
                                  "evaluation": settings.evaluation.name, "seen": 0, "dense_perplexity": dense_ppl,
                                  "calibration_tokens": settings.calib_samples * settings.seq_len,
                                  "eval_samples": settings.eval_samples, "seq_len": settings.seq_len}
        record = BatchRecord(configs, dict(st.session_state[META]), history.owner())
        st.session_state[JOB] = Job(lambda: run_methods(lm, configs, calib, evaluation, settings.prompt,
                                                        settings.new_tokens, record.done), label="lm",
                                    on_end=record.end, end_error=record.error)

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
    if job.running and st.session_state.get(BUSY):  # "already running" stands only while it does
        st.warning(st.session_state[BUSY])
    else:
        st.session_state[BUSY] = None
    steps: list[LMProgress] = job.steps
    collect(steps, meta)
    last = steps[-1] if steps else None
    jobs.progress_bar(job, last.fraction if last else 0.0, last.text if last else "Starting…", "lm_cancel")
    jobs.settle(job, meta)
    jobs.ended(job, "Cancelled: the methods that had finished stay on the charts; the one under way is recorded as "
                    "cancelled.")


def _recorder(meta: dict, who: str):
    """Record one finished method's row as the page's job does (a batch of one): how a test makes a page run."""
    def record(row: dict) -> dict:
        return BatchRecord([config_from_dict(row["config"])], meta, who).done(0, row)
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


@dataclass(frozen=True)
class Shown:
    """The runs the charts, the table and the detail show, oldest first, and what was left out and why."""

    rows: list[dict]
    hidden: list[str]  # one sentence per reason


def shown_runs(settings: LMSettings, model_name: str) -> Shown:
    """This session's runs and the history's on this model and these evaluation tokens (as the source setting
    says), each once; the runs of this model left out are counted by reason."""
    session = [r for r in st.session_state.get(RESULTS, []) if r["spec"] == settings.spec]
    mine = {r["run_id"] for r in session if r["run_id"]}
    hidden: Counter = Counter()
    recorded: list[dict] = []
    if settings.source != "session":
        try:
            runs = RunStore().runs(kind="lm", model=model_name)
        except HistoryError as exc:
            runs = []
            hidden[f"the history cannot be read ({exc})"] += 1
        me = history.owner()
        for run in runs:
            if run.id in mine or (settings.source == "mine" and run.owner != me):
                continue
            row = row_from_run(run)
            if row is None:
                hidden[f"{run.status}: no perplexity to draw" if run.status != "done" else "not a run this page "
                       "can draw"] += 1
            elif recorded_key(row) != settings.eval_key:
                hidden[_other_tokens(row)] += 1
            else:
                recorded.append({**row, "spec": settings.spec, "eval_key": settings.eval_key})
    here = [r for r in session if r["eval_key"] == settings.eval_key]
    for r in session:
        if r["eval_key"] != settings.eval_key:
            hidden[_other_tokens(r)] += 1
    rows = sorted(recorded, key=lambda r: r["created_at"]) + here
    return Shown(rows, [f"{n} run{'s' if n > 1 else ''} {why}" for why, n in hidden.most_common()])


def _other_tokens(row: dict) -> str:
    """Why a recorded run of this model is not drawn with these: the tokens it was measured on."""
    text = row.get("evaluation") or "an unrecorded text"
    tokens = f"{row['tokens']:,} tokens of " if row.get("tokens") else ""
    if recorded_key(row) is None:
        return (f"measured on {tokens}{text} without a record of which windows (recorded before runs kept one, or "
                "on an uploaded text): they cannot be matched with these tokens")
    return f"measured on other evaluation tokens ({tokens}{text}): their perplexities do not compare with these"


def hidden_note(shown: Shown, settings: LMSettings) -> None:
    if shown.hidden:
        st.caption(f"Not on the charts (this model, {settings.eval_samples} × {settings.seq_len} tokens of "
                   f"{settings.evaluation.name} shown): " + "; ".join(shown.hidden) + ".")


def charts(rows: list[dict], settings: LMSettings, dense_ppl: float | None):
    """Perplexity vs sparsity, vs weight bits and, when there are W·A· runs, vs W·A·; returns the bits chart's
    placeholder and the points it draws."""
    points = [plotted(r) for r in rows]
    left, right = st.columns(2)
    pruned = [p for p in points if p["method"] in PRUNING]
    left.plotly_chart(plots_lm.perplexity_curves(pruned, "x", "sparsity (fraction of linear weights zeroed)",
                                                 "Perplexity vs sparsity", dense_ppl, x_range=(0, 1)),
                      key="lm_chart_sparsity")
    if not pruned:
        left.caption("Run magnitude, Wanda or SparseGPT at a few sparsities: each run adds a point to its line.")
    wa = [p for p in points if p["method"] in W_A]
    if wa:
        st.plotly_chart(plots_lm.perplexity_wa(wa, dense_ppl), key="lm_chart_wa")
    return right.empty(), [p for p in points if p["method"] not in PRUNING and p["method"] not in W_A]


def results_table(rows: list[dict], dense_ppl: float | None) -> None:
    if not rows:
        st.info("Choose methods and press **Run**: each finished method adds a point to the charts above.")
        return
    table = pd.DataFrame([{
        "method": r["label"], "perplexity": r["perplexity"], "95% range": _range(r),
        "vs dense": r["perplexity"] / dense_ppl if dense_ppl else None,
        "zero weights": r["sparsity"], "packed MiB": r["size_bytes"] / 2**20 if r.get("size_bytes") else None,
        "of fp16": r["size_bytes"] / r["baseline_size_bytes"] if r.get("baseline_size_bytes") else None,
        "seconds": r["seconds"], "calibration": r["calibration"],
        "recorded": time.strftime("%d %b %H:%M", time.localtime(r["created_at"])) if r.get("created_at") else
        "this session",
        "run": r["run_id"]} for r in rows])
    st.dataframe(table, hide_index=True, key="lm_table", column_config={
        "perplexity": st.column_config.NumberColumn(format="%.2f"),
        "vs dense": st.column_config.NumberColumn(format="%.2f×"),
        "zero weights": st.column_config.NumberColumn(format="percent"),
        "packed MiB": st.column_config.NumberColumn(format="%.2f"),
        "of fp16": st.column_config.NumberColumn(format="percent"),
        "seconds": st.column_config.NumberColumn(format="%.1f")})
    history.show_error()


def _range(row: dict) -> str:
    """The run's 95% range from its windows' spread ('' when it has none recorded)."""
    interval = perplexity_interval(math.log(row["perplexity"]), row.get("nll_se"))
    return f"{interval[0]:.2f}–{interval[1]:.2f}" if interval else ""
