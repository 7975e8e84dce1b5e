"""The Pruning page's sections; kept in an imported module so Streamlit compiles it once, not on every rerun."""

from __future__ import annotations

import threading

import pandas as pd
import streamlit as st

from compression.core import InputError
from compression.models import Workbench
from compression.plots import pruning as plots
from compression.pruning import (
    Baseline,
    Preview,
    PruneConfig,
    accuracy_curve,
    kept_histogram,
    mask_grid,
    measure_baseline,
    preview,
    sensitivity_scan,
    suggest_allocation,
    weights_histogram,
)

# Labels are what the URL keeps (?prune_method=structured), so they stay short.
METHODS = {"magnitude": "magnitude", "structured": "structured", "N:M": "nm"}
NM_PATTERNS = ("2:4", "1:4", "4:8", "1:2")


def concept() -> None:
    """The formulas, for students."""
    with st.expander("Concept: the formulas"):
        st.markdown("**Magnitude pruning** keeps the weights whose size exceeds a threshold τ:")
        st.latex(r"W_{\text{pruned}} = \{\, w \in W : |w| > \tau \,\}, \qquad m_i = \mathbb{1}[\,|w_i| > \tau\,], "
                 r"\quad \hat W = m \odot W")
        st.markdown("A **target sparsity** s picks τ as the s-quantile of |w| — per layer, or over all layers at once "
                    "(**global**: layers with many small weights give up more):")
        st.latex(r"\tau_s = \text{quantile}_s\big(\{|w|\}\big), \qquad s = \frac{\#\{i : m_i = 0\}}{\#W}")
        st.markdown("**N:M** keeps the N largest of every M consecutive input weights (2:4 → 50% sparsity), a pattern "
                    "some GPUs accelerate. **Structured** pruning ranks whole units (neurons, conv filters, attention "
                    "heads) by the Lp norm of their weights and removes the weakest, so the matrices get smaller:")
        st.latex(r"\text{score}(u) = \lVert W_{u,:} \rVert_p = \Big(\sum_j |w_{uj}|^p\Big)^{1/p}")
        st.markdown("**Gradual pruning** (Zhu & Gupta, 2017) raises sparsity while training, fast at first and "
                    "slowly at the end:")
        st.latex(r"s_t = s_f + (s_i - s_f)\Big(1 - \frac{t - t_0}{n\,\Delta t}\Big)^3, "
                 r"\quad t \in \{t_0, t_0 + \Delta t, \dots, t_0 + n\Delta t\}")
        st.markdown("**Fine-tuning** after pruning keeps the mask applied after every optimizer step "
                    r"($W \leftarrow m \odot W$), otherwise the pruned weights grow back.")


def workspace(model) -> dict:
    """This session's working copy of the model, its dense measurements and cached curves (one model at a time)."""
    # Fast reruns may start a new script thread before the interrupted one has finished: one lock per session
    # keeps two runs from swapping weights into the same working copy at once.
    lock = st.session_state.setdefault("prune_lock", threading.Lock())
    with lock:
        cache = st.session_state.setdefault("prune_workspace", {})
        if cache.get("model") is not model:
            bench = Workbench(model)
            cache.clear()
            cache.update(model=model, bench=bench, baseline=measure_baseline(bench), curves={}, scan=None,
                         rankings={}, before=weights_histogram(bench.base), lock=lock)
    return cache


def controls(space: dict, is_onnx: bool) -> tuple[PruneConfig, Preview, dict]:
    """Method, scope, sliders -> a config and its measured preview (st.stop() with a message on bad input)."""
    w = _widgets(space)
    if w["method"] == "structured" and is_onnx:
        st.info("Structured pruning needs a PyTorch model: an ONNX graph would have to be rewritten. "
                "Magnitude and N:M pruning work on this model.")
        st.stop()
    try:
        config = _config(w)
        view = _measured(space, config)
    except InputError as exc:
        st.error(str(exc))
        st.stop()
    _warn_extremes(w, view)
    return config, view, {"method": w["method"], "sparsity": w["sparsity"], "accuracy": view.evaluation.accuracy}


def _widgets(space: dict) -> dict:
    """The pruning controls, each bound to the URL."""
    bench = space["bench"]
    layers = [k.rsplit(".", 1)[0] for k in bench.base]
    max_abs = max(float(w.abs().max()) for w in bench.base.values())
    top = st.columns([3, 2, 2, 3])
    method = METHODS[top[0].selectbox("Method", list(METHODS), key="prune_method", bind="query-params",
                                      help="magnitude: single weights (unstructured) · structured: whole neurons, "
                                           "filters or heads · N:M: N of every M consecutive weights kept")]
    scope = top[1].radio("Scope", ["global", "layer"], key="prune_scope", horizontal=True, bind="query-params",
                         help="global: one threshold for all layers · layer: the same sparsity in every layer",
                         disabled=method == "nm")
    by = top[2].radio("Prune by", ["sparsity", "threshold"], key="prune_by", horizontal=True, bind="query-params",
                      disabled=method != "magnitude", help="A target fraction of zeros, or the textbook |w| > τ")
    exclude = top[3].multiselect("Leave dense (exclude)", layers, key="prune_exclude",
                                 help="e.g. the first and last layers, which are often the most sensitive")
    by_threshold = method == "magnitude" and by == "threshold"
    left, right = st.columns(2)
    sparsity = left.slider("Sparsity (fraction of weights removed; structured: of units)", 0.0, 1.0, 0.5, 0.01,
                           key="sparsity", bind="query-params", disabled=method == "nm" or by_threshold)
    step = max(round(max_abs / 500, 4), 0.0001)
    threshold = right.slider("Threshold τ (keep |w| > τ)", 0.0, round(max_abs * 1.05 + step, 4),
                             min(0.05, round(max_abs / 2, 4)), step, format="%.4f", key="threshold",
                             bind="query-params", disabled=not by_threshold)
    nm, norm = "2:4", 1
    if method == "nm":
        nm = st.selectbox("N:M pattern", NM_PATTERNS, key="prune_nm", bind="query-params")
    elif method == "structured":
        norm = st.radio("Rank units by", [1, 2], format_func=lambda p: f"L{p} norm", key="prune_norm",
                        horizontal=True)
    return {"method": method, "scope": scope, "by_threshold": by_threshold, "exclude": tuple(exclude),
            "sparsity": sparsity, "threshold": threshold, "nm": nm, "norm": norm}


def _config(w: dict) -> PruneConfig:
    if w["method"] == "nm":
        n, m = (int(p) for p in w["nm"].split(":"))
        return PruneConfig(method="nm", n=n, m=m, exclude=w["exclude"])
    if w["by_threshold"]:
        return PruneConfig(threshold=w["threshold"], scope=w["scope"], exclude=w["exclude"])
    return PruneConfig(amount=w["sparsity"], method=w["method"], scope=w["scope"], exclude=w["exclude"],
                       norm=w["norm"])


def _measured(space: dict, config: PruneConfig) -> Preview:
    """The preview of `config`, computed once per setting (other widgets on the page rerun without it)."""
    with space["lock"]:
        if space.get("last_config") != config:
            space.update(last_config=config, last_view=preview(space["bench"], config, space["baseline"],
                                                               rankings=space["rankings"]))
        return space["last_view"]


def _warn_extremes(w: dict, view: Preview) -> None:
    if w["by_threshold"] and view.sparsity >= 1.0:
        st.warning(f"τ = {w['threshold']:.4f} is above every weight: all "
                   f"{sum(m.numel() for m in view.masks.values()):,} weights are removed and the model can only "
                   "guess.")
    elif w["sparsity"] >= 1.0 and w["method"] == "magnitude":
        st.warning("Sparsity 100%: every prunable weight is zero, so the model outputs its biases only.")
    elif w["method"] == "structured" and w["sparsity"] >= 1.0:
        st.warning("Structured pruning keeps at least one unit per layer so the model still has a path to the "
                   "output.")


def metric_cards(view: Preview, baseline: Baseline, method: str) -> None:
    """Accuracy, non-zeros, latency; dense file vs sparse encoding vs physically shrunk model."""
    acc, base_acc = view.evaluation.accuracy, baseline.evaluation.accuracy
    cards = [c for row in (st.columns(3), st.columns(3)) for c in row]
    cards[0].metric("Accuracy (held-out)", f"{acc:.2%}", f"{100 * (acc - base_acc):+.1f} pts vs dense",
                    help=f"dense {base_acc:.2%} on {view.evaluation.samples} test samples")
    cards[1].metric("Non-zero parameters", f"{view.nonzero_params:,}", f"of {baseline.params:,} · "
                    f"{view.sparsity:.1%} of weights pruned", delta_color="off", delta_arrow="off")
    if view.latency_ms is not None:
        shrunk = f" · shrunk {view.shrunk_latency_ms:.2f} ms" if view.shrunk_latency_ms is not None else ""
        how = view.latency_method
        cards[2].metric(f"Latency, masked model ({how['latency_stat']} run, batch {how['latency_batch']})",
                        f"{view.latency_ms:.2f} ms",
                        f"dense {view.dense_latency_ms:.2f} ms{shrunk}", delta_color="off", delta_arrow="off",
                        help="fastest of 3-5 real forward passes on this server's CPU, the three models timed in turns")
    else:
        cards[2].metric("Latency", "—", "not timed for ONNX here", delta_color="off", delta_arrow="off")
    cards[3].metric("Dense file (safetensors)", f"{baseline.size_bytes / 1024:,.1f} KiB",
                    "same bytes: a zero costs 4 bytes too", delta_color="off", delta_arrow="off",
                    help="the masked model written as float32 safetensors: exactly as big as the dense one")
    cards[4].metric("Sparse encoding", f"{view.sparse_size_bytes / 1024:,.1f} KiB",
                    f"{view.sparse_size_bytes / baseline.size_bytes:.0%} of the dense file", delta_color="off",
                    delta_arrow="off",
                    help="a real safetensors file: non-zero values + a 1-bit mask per weight")
    if view.shrunk_size_bytes is not None:
        removed = baseline.params - view.shrunk_params
        what = ("units removed" if method == "structured" else "dead units removed") if removed else \
            "no whole unit was dead: nothing to remove"
        cards[5].metric("Physically shrunk model", f"{view.shrunk_size_bytes / 1024:,.1f} KiB",
                        f"{view.shrunk_params:,} params · {what}", delta_color="off", delta_arrow="off",
                        help="The model rebuilt without removed units (structured) or without units whose outgoing "
                             "weights are all zero (unstructured): a real, smaller architecture")
    else:
        cards[5].metric("Physically shrunk model", "—", "needs an MLP, SmallCNN or TinyTransformer", delta_color="off",
                        delta_arrow="off")


def figures(space: dict, view: Preview, config: PruneConfig, sparsity: float) -> None:
    """Histogram with ±τ, per-layer sparsity, the accuracy curve with the current point, a mask heat-map."""
    bench, base_acc, acc = space["bench"], space["baseline"].evaluation.accuracy, view.evaluation.accuracy
    curve_key = (config.method if config.method == "structured" else "magnitude", config.scope, config.exclude,
                 config.norm)
    with space["lock"]:
        if curve_key not in space["curves"]:
            space["curves"][curve_key] = accuracy_curve(bench, config)
        curve = space["curves"][curve_key]

    row1 = st.columns(2)
    log_y = row1[0].toggle("Log scale", key="prune_hist_log", value=True)
    before = space["before"]
    after = kept_histogram({k: view.weights.get(k, w) for k, w in bench.base.items()}, before)
    tau = view.threshold if config.method == "magnitude" else 0.0  # N:M and structured have no single τ
    row1[0].plotly_chart(plots.pruning_histogram(before, after, tau, log_y=log_y))
    sizes = {k: w.numel() for k, w in bench.base.items()}
    all_layers = {**{k: 0.0 for k in bench.base}, **view.layer_sparsity}
    row1[1].plotly_chart(plots.layer_sparsity_bars(all_layers, sizes))
    row2 = st.columns(2)
    curve_title = ("Accuracy vs fraction of units removed" if config.method == "structured" else
                   f"Accuracy vs sparsity ({'global' if config.scope == 'global' else 'per-layer'} magnitude)")
    row2[0].plotly_chart(plots.accuracy_curve([p.amount for p in curve], [p.accuracy for p in curve],
                                              (view.sparsity if config.method != "structured" else sparsity, acc),
                                              base_acc, curve_title))
    masked_layers = list(view.masks)
    layer = row2[1].selectbox("Mask of layer", masked_layers, key="prune_mask_layer")
    row2[1].plotly_chart(plots.mask_heatmap(mask_grid(view.masks[layer]), layer, tuple(view.masks[layer].shape)))
    st.caption(f"{len(curve)} points measured on held-out data with one working copy of the model · "
               "histograms and heat-map are computed on the server (100 bins, at most 64x64 cells)")


def why_not_faster(view: Preview) -> None:
    """Plain words, with the measured times."""
    st.subheader("Why is the pruned model not faster?")
    if view.latency_ms is not None:
        ratio = view.latency_ms / view.dense_latency_ms if view.dense_latency_ms else 1.0
        verdict = ("about the same" if 0.8 <= ratio <= 1.25 else
                   f"{ratio:.2f}x the dense time — timer noise from other work on this server, not the zeros")
        shrunk_line = (f" The physically shrunk model (units removed, smaller matrices) took "
                       f"**{view.shrunk_latency_ms:.2f} ms**." if view.shrunk_latency_ms is not None else "")
        st.markdown(
            f"The masked model ran in **{view.latency_ms:.2f} ms**, the dense one in "
            f"**{view.dense_latency_ms:.2f} ms** ({verdict}). A dense matrix multiply does every multiplication "
            "whether the weight is zero or not — "
            "the zeros are still stored as 4-byte floats and still multiplied. Sparse kernels pay for index "
            "bookkeeping and only win at very high sparsity on large layers; 2:4 patterns need GPU hardware "
            "(sparse tensor cores) that a CPU does not have. What really makes a model smaller and faster is removing "
            f"whole units (structured pruning), or storing only the non-zeros for the file.{shrunk_line}")
    else:
        st.markdown("Dense kernels multiply zeros like any other number, so unstructured and N:M sparsity do not "
                    "speed up a dense model; only removing whole units does, or sparse kernels on suitable hardware.")


def sensitivity(space: dict, view: Preview, config: PruneConfig) -> None:
    """Each layer pruned alone, and a suggested per-layer allocation for the current target."""
    bench, baseline = space["bench"], space["baseline"]
    sizes = {k: w.numel() for k, w in bench.base.items()}
    with st.expander("Sensitivity scan: which layers can lose the most?"):
        st.caption("Each layer pruned alone at several sparsities (the Distiller / NNI analysis), then a per-layer "
                   "allocation for the current target that spends accuracy where it is cheapest.")
        if st.toggle("Run the scan", key="prune_scan"):
            with space["lock"]:
                if space["scan"] is None or space["scan"][0] != config.exclude:
                    space["scan"] = (config.exclude, sensitivity_scan(bench, exclude=config.exclude))
                scan = space["scan"][1]
            st.plotly_chart(plots.sensitivity_lines([s.rsplit(".", 1)[0] for s in scan.layers], scan.amounts,
                                                    scan.accuracy, scan.baseline_accuracy))
            target = view.sparsity
            key = (round(target, 4), config.exclude)
            with space["lock"]:
                if space.get("allocation", (None,))[0] != key:  # measured once per target, not on every rerun
                    allocation = suggest_allocation(scan, target)
                    allocated = preview(bench, allocation.config(config.exclude), baseline)
                    uniform = preview(bench, PruneConfig(amount=min(target, 1.0), scope="global",
                                                         exclude=config.exclude), baseline)
                    space["allocation"] = (key, allocation, allocated, uniform)
                _, allocation, allocated, uniform = space["allocation"]
            st.dataframe(pd.DataFrame([{"layer": k.rsplit(".", 1)[0], "weights": sizes[k], "suggested sparsity": a}
                                       for k, a in allocation.layer_amounts]), hide_index=True,
                         column_config={"suggested sparsity": st.column_config.NumberColumn(format="percent")})
            st.markdown(f"At {target:.0%} overall: suggested allocation **{allocated.evaluation.accuracy:.2%}** "
                        f"vs global magnitude **{uniform.evaluation.accuracy:.2%}** (both measured).")
