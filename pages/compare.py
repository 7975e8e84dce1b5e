"""Compare page: every recorded run, the accuracy/size and accuracy/latency trade-offs, and a budget search."""

import io
import math

import pandas as pd
import streamlit as st

from compression.core import InputError, readable
from compression.core.settings import shared_mode
from compression.data import load_dataset
from compression.history import (
    CLASSIFIER_COLUMNS,
    LATENCY_TOLERANCE,
    LM_COLUMNS,
    Run,
    latency_groups,
    latency_method_label,
    lm_group,
    model_from_run_file,
    pareto_front,
    run_names,
    runs_report,
    runs_table,
    split_families,
    summarise,
    table_of,
    write_csv,
)
from compression.metrics import LATENCY_METHOD, histogram
from compression.models import ARCHITECTURES
from compression.pipeline import (
    BudgetConfig,
    best_run,
    best_under_budget,
    budget_search,
)
from compression.plots import common as plots
from compression.plots import compare as plots_compare
from ui import history, jobs, lm_cost_compare
from ui.common import current_model
from ui.downloads import download_button
from ui.routing import ensure_routed


def table_frame(rows: list[dict], columns: tuple[str, ...]) -> pd.DataFrame:
    """A family's runs as a stakeholder reads them: its own compact columns, words for headers and kinds, %, KiB
    and ms in the cells, blanks for missing values."""
    headers, cells = table_of(rows, columns)
    return pd.DataFrame(cells, columns=headers)


def measured(row: dict, *keys: str) -> bool:
    """Whether the run recorded a finite number under every one of `keys`."""
    return all(isinstance(row.get(k), (int, float)) and math.isfinite(row[k]) for k in keys)


def _test_sizes(models) -> dict[str, int]:
    """{dataset: held-out images} of the zoo architectures among `models` (whose datasets are on this machine)."""
    sizes = {}
    for name in models:
        arch = ARCHITECTURES.get(name)
        if arch is not None and arch.dataset not in sizes:
            try:
                sizes[arch.dataset] = len(load_dataset(arch.dataset).y_test)
            except InputError:
                continue
    return sizes


ensure_routed()
st.title("Compare")
st.caption("Every run from every page, sweep and the CLI is recorded here (an SQLite file in your data folder, or the "
           "PostgreSQL database several servers share). "
           "Classifiers are ranked by accuracy on held-out images (higher is better), language models by perplexity "
           "on held-out text (lower is better); the two never share a ranking or a chart.")

store = history.store()
runs = store.runs() if store is not None else []
rows = runs_table(runs)

if not rows:
    st.info("No runs recorded yet. Run a pipeline, a fine-tune, QAT or a distillation, or use the CLI "
            "(`python -m compression pipeline --model mlp --out mlp.clab`).")
else:
    f = st.columns(2)
    kinds = f[0].multiselect("Kind", sorted({r["kind"] for r in rows}), key="cmp_kind", bind="query-params",
                             format_func=readable.kind)
    models = f[1].multiselect("Model", sorted({r["model"] for r in rows}), key="cmp_model", bind="query-params")
    shown = [r for r in rows if (not kinds or r["kind"] in kinds) and (not models or r["model"] in models)]
    names = dict(zip((r["id"] for r in shown), run_names(shown)))  # unique: five runs with one label differ
    classifiers, lms = split_families(shown)
    st.markdown("\n".join(f"- **{k}**: {v}" for k, v in summarise(shown).items()))
    if classifiers:
        st.markdown("**Classifier runs**: accuracy on held-out test images, higher is better.")
        st.dataframe(table_frame(classifiers, CLASSIFIER_COLUMNS), hide_index=True, key="cmp_table")
    if lms:
        st.markdown("**Language-model runs**: perplexity on the held-out last tenth of the evaluation text, lower "
                    "is better; compare perplexities only on the same model, text and tokens.")
        st.dataframe(table_frame(lms, LM_COLUMNS), hide_index=True, key="cmp_lm_table")
    test_sizes = _test_sizes({r["model"] for r in classifiers})
    noise = readable.one_image_each(test_sizes) if test_sizes else ""
    if noise:
        st.caption(noise)
    d = st.columns([3, 1, 1, 1])
    mine = {r.id for r in history.deletable(runs)}
    doomed = d[0].multiselect("Delete runs", [r["id"] for r in shown if r["id"] in mine], key="cmp_delete",
                              placeholder="choose run ids",
                              help="On a shared server you may delete only the runs you created." if shared_mode()
                              else None)

    def delete() -> None:
        history.delete(store, st.session_state["cmp_delete"])
        st.session_state["cmp_delete"] = []

    d[1].button("Delete", key="cmp_delete_go", on_click=delete, disabled=not doomed)
    buffer = io.StringIO()
    write_csv(shown, buffer)  # headers in words with units, numbers a spreadsheet can sum
    download_button(d[2], "Runs as CSV", buffer.getvalue(), "runs.csv", mime="text/csv", key="cmp_csv",
                    help="One header row in words with units (accuracy in %, sizes in bytes, times in ms or s) and "
                         "plain numbers, as a spreadsheet expects; `python -m compression runs list --json` gives "
                         "the recorded keys at full precision.")

    figures = []
    plotted = [r for r in classifiers if measured(r, "accuracy", "size_bytes")]
    if plotted:
        labels = [names[r["id"]] for r in plotted]
        xs, ys = [r["size_bytes"] for r in plotted], [r["accuracy"] for r in plotted]
        figures.append(plots_compare.pareto_chart(xs, ys, labels, pareto_front(xs, ys), "file size (log)",
                                                  "Accuracy vs size"))
        groups = latency_groups(plotted)
        if groups:
            # Latencies are comparable only when measured the same way (statistic, batch size, threads).
            method = st.selectbox("Latency measured as", list(groups), key="cmp_latency_method") \
                if len(groups) > 1 else next(iter(groups))
            timed = [plotted[i] for i in groups[method]]
            lx, ly = [r["latency_ms"] for r in timed], [r["accuracy"] for r in timed]
            figures.append(plots_compare.pareto_chart(
                lx, ly, [names[r["id"]] for r in timed], pareto_front(lx, ly, LATENCY_TOLERANCE),
                f"latency (ms, {method})", "Accuracy vs latency", log_x=False, x_unit="ms"))
            others = sum(len(v) for k, v in groups.items() if k != method)
            latency_note = (f"Latency is compared only between runs measured the same way: {method}."
                            + (f" {others} run(s) timed another way are left out of that chart." if others else "")
                            + f" On its frontier, latencies within {LATENCY_TOLERANCE:.0%} of each other count as "
                              "equal: each run kept its median, not its spread, and timings of one model on a shared "
                              "CPU differ by a few percent, so a faster-looking run must be clearly faster to join it.")
        for fig in figures:
            st.plotly_chart(fig)
        if groups:
            st.caption(latency_note)  # under the charts it is about
        missing = len(classifiers) - len(plotted)
        if missing:
            st.caption(f"{missing} classifier run(s) recorded no file size (e.g. fine-tunes and distillations "
                       "measured only accuracy), so they are in the table but not on this chart.")
        st.caption("Sizes are the bytes of each run's own file: .clab for pipelines, the sparse encoding for "
                   "pruning settings, the packed file for quantization, torch.save for students.")
    elif classifiers:
        st.info("None of these classifier runs has both an accuracy and a size to plot.")
    charted = [r for r in lms if measured(r, "perplexity", "size_bytes")]
    if charted:
        dense = {lm_group(r): (r["baseline_size_bytes"], r["baseline_perplexity"]) for r in reversed(charted)
                 if measured(r, "baseline_size_bytes", "baseline_perplexity")}
        figures.append(plots_compare.perplexity_vs_size([r["size_bytes"] for r in charted],
                                                        [r["perplexity"] for r in charted],
                                                        [names[r["id"]] for r in charted],
                                                        [lm_group(r) for r in charted], dense))
        st.plotly_chart(figures[-1])
        st.caption("One colour per model and evaluation (text and number of held-out tokens): perplexities compare "
                   "only within a colour. The open diamond is the dense model, every weight in float16, on the "
                   "same tokens.")
    figures += lm_cost_compare.charts(lms)  # LM runs against measured tokens/s or memory, and their cost table
    download_button(d[3], "HTML report", lambda: runs_report(shown, figures, [noise]), "runs-report.html",
                    mime="text/html", key="cmp_report")

    st.subheader("Two runs side by side")
    by_id, row_by_id = {r.id: r for r in runs}, {r["id"]: r for r in shown}
    ids = [r["id"] for r in shown]
    pick = st.columns(2)
    a = pick[0].selectbox("Run A", ids, index=0, key="cmp_a", bind="query-params", format_func=names.get)
    b = pick[1].selectbox("Run B", ids, index=min(1, len(ids) - 1), key="cmp_b", bind="query-params",
                          format_func=names.get)
    if a and b:
        left, right = by_id[a], by_id[b]
        skip = {"id", "created", "kind", "model", "label", "status", *LATENCY_METHOD}
        metrics = sorted((m for m in set(row_by_id[a]) | set(row_by_id[b]) if m not in skip), key=readable.name)
        st.dataframe(pd.DataFrame({"metric": [readable.name(m) for m in metrics],
                                   f"A · {left.label}": [readable.value(m, row_by_id[a].get(m)) for m in metrics],
                                   f"B · {right.label}": [readable.value(m, row_by_id[b].get(m)) for m in metrics]}),
                     hide_index=True)
        if "latency_ms" in left.metrics or "latency_ms" in right.metrics:
            st.caption(f"Latency of A: {latency_method_label(left.metrics)}; of B: "
                       f"{latency_method_label(right.metrics)}. Compare the two only when these agree.")
        curves = [(f"{k} · {key}", [p["epoch"] for p in rows if p.get("test_accuracy") is not None],
                   [p["test_accuracy"] for p in rows if p.get("test_accuracy") is not None])
                  for k, run in (("A", left), ("B", right))
                  for key, rows in (run.details.get("curves") or {}).items() if rows]
        if curves:
            st.plotly_chart(plots_compare.curves_side_by_side(curves, "Test accuracy while training", "accuracy"))
        layers = [(f"{k} · {run.label}", list(run.details["layer_sparsity"]), list(run.details["layer_sparsity"].values()))
                  for k, run in (("A", left), ("B", right)) if run.details.get("layer_sparsity")]
        if layers:
            st.plotly_chart(plots_compare.layer_bars(layers, "Per-layer sparsity"))

        def decoded(key: str, run: Run):
            full = store.get(run.id)
            if not full.file:
                st.caption(f"Run {key} was recorded without a model file (settings and measurements only), so it "
                           "has no weight histogram below.")
            try:
                return model_from_run_file(full.file_name, full.file, full.model)
            except InputError as exc:
                st.warning(f"Run {run.id}: its stored file cannot be decoded ({exc})")
                return None

        models_ab = [(k, decoded(k, run)) for k, run in (("A", left), ("B", right))]
        with_files = [(k, m) for k, m in models_ab if m is not None]
        if with_files:
            names = list(with_files[0][1].weights())
            layer = st.selectbox("Layer (from the runs' compressed files)", names, key="cmp_layer",
                                 bind="query-params")
            cols = st.columns(len(with_files))
            for col, (k, m) in zip(cols, with_files):
                w = m.weights().get(layer)
                if w is not None:
                    nonzero = w[w != 0]
                    col.plotly_chart(plots.weight_histogram(histogram(nonzero if nonzero.numel() else w),
                                                            f"Run {k}: {layer}, non-zero weights"))

st.subheader("Budget search")
picked = current_model()
if picked is not None:
    model, _ = picked
    st.caption(f"For **{model.name}**: one-shot prune × k-means bits (× distilled students), each encoded to a "
               "real .clab file, decoded and evaluated. No fine-tuning, so a pipeline run at the chosen point "
               "will do better.")
    c = st.columns(4)
    metric = c[0].radio("Budget on", ["size", "latency"], key="budget_metric", horizontal=True, bind="query-params")
    unit = "bytes" if metric == "size" else "ms"
    budget = c[1].number_input(f"Budget ({unit})", min_value=0.0, value=4000.0 if metric == "size" else 0.05,
                               key="budget_value", bind="query-params",
                               format="%.3f" if metric == "latency" else "%.0f")
    students = c[2].multiselect("Also distilled students (hidden units)", [8, 16, 32, 64], key="budget_students",
                              bind="query-params")
    job = st.session_state.get("budget_job")

    def start() -> None:
        if job is not None and job.running:
            return
        try:  # the widgets' values now: a callback runs before this run redraws them, so the names above are stale
            config = BudgetConfig(budget=st.session_state["budget_value"], metric=st.session_state["budget_metric"],
                                  student_hidden=tuple(st.session_state["budget_students"]))
        except InputError as exc:
            st.session_state["budget_error"] = str(exc)
            return
        st.session_state["budget_error"] = None
        st.session_state["budget_job"] = jobs.start(lambda: budget_search(model, config), "budget", model.name,
                                                    "budget search", config.to_dict(),
                                                    lambda points, _steps: best_run(points, config, model.name))
        st.session_state["budget_meta"] = {"status": "running", "model": model.name, "config": config}

    c[3].button("Search", key="budget_go", on_click=start, type="primary",
                disabled=model.module is None or model.arch is None)
    if model.module is None or model.arch is None:
        st.info("The budget search rebuilds the model from its weights: it needs a zoo architecture.")
    if st.session_state.get("budget_error"):
        st.error(st.session_state["budget_error"])

    @st.fragment(run_every=jobs.poll_every(job))
    def live_budget() -> None:
        job, meta = st.session_state.get("budget_job"), st.session_state.get("budget_meta")
        if job is None:
            return
        progress = job.steps
        points = [p.point for p in progress if p.point is not None]
        if job.status == "done":
            points = job.result
        jobs.progress_bar(job, progress[-1].fraction if progress else 0.0, f"{len(points)} points measured",
                          "budget_cancel")
        if points:
            cfg = meta["config"]
            xs = [p.size_bytes if cfg.metric == "size" else p.latency_ms for p in points]
            ys = [p.accuracy for p in points]
            best = best_under_budget(points)
            labels = [f"{'' if p.student_hidden is None else f'h{p.student_hidden} '}{p.sparsity:.0%}/{p.codebook_bits}b"
                      for p in points]
            st.plotly_chart(plots_compare.pareto_chart(
                xs, ys, labels, pareto_front(xs, ys), "file size (log)" if cfg.metric == "size"
                else "latency (ms)", "Budget search", log_x=cfg.metric == "size", highlight=best,
                budget=cfg.budget, x_unit="bytes" if cfg.metric == "size" else "ms"))
            if job.status == "done":
                if best is None:
                    st.warning("No candidate fits this budget: raise it, or add fine-tuning with the Pipeline page.")
                else:
                    p = points[best]
                    st.success(f"Best under budget: {p.label}, sparsity {p.sparsity:.0%}, {p.codebook_bits} bits → "
                               f"{p.accuracy:.2%} accuracy, {p.size_bytes:,} B, {p.latency_ms:.3f} ms.")
        jobs.settle(job, meta)
        jobs.ended(job, "Search cancelled.", "The search failed")

    live_budget()
