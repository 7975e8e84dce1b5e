"""The Pruning page's sections; kept in an imported module so Streamlit compiles it once, not on every rerun."""

from __future__ import annotations

import math
import threading

import numpy as np
import pandas as pd
import streamlit as st

from compression.core import InputError, readable
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
    """Method, scope, sliders -> a config and its measured preview (st.stop() with a message on bad input).

    A disabled control shows the value in force: it is drawn after the measurement, set to what the active
    control produced (the sparsity a threshold gives, the τ a sparsity gives), so the URL holds it too.
    """
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
    _disabled_in_force(w, view)
    _warn_extremes(w, view)
    return config, view, {"method": w["method"], "sparsity": w["sparsity"], "accuracy": view.evaluation.accuracy}


def threshold_grid(max_abs: float) -> tuple[float, float, int]:
    """The τ slider's step (1, 2 or 5 × 10^k, about max|w|/500), its top and its decimals: one τ, one way."""
    raw = max(max_abs / 500, 1e-6)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    decimals = max(0, -math.floor(math.log10(step)))
    return round(step, decimals), round(math.ceil(max_abs * 1.05 / step) * step, decimals), decimals


def _widgets(space: dict) -> dict:
    """The pruning controls, each bound to the URL; the disabled slider is drawn later, by _disabled_in_force."""
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
    if method == "magnitude":
        by = top[2].radio("Prune by", ["sparsity", "threshold"], key="prune_by", horizontal=True,
                          bind="query-params", help="A target fraction of zeros, or the textbook |w| > τ")
    else:  # structured and N:M prune by sparsity: a read-only twin says so (see _disabled_in_force)
        _keep("prune_by")
        st.session_state["prune_by_in_force"] = by = "sparsity"
        top[2].radio("Prune by", ["sparsity", "threshold"], key="prune_by_in_force", horizontal=True, disabled=True,
                     help="structured and N:M pruning always prune by sparsity")
    exclude = top[3].multiselect("Leave dense (exclude)", layers, key="prune_exclude", bind="query-params",
                                 help="e.g. the first and last layers, which are often the most sensitive")
    by_threshold = method == "magnitude" and by == "threshold"
    left, right = st.columns(2)
    step, top_tau, decimals = threshold_grid(max_abs)
    w = {"method": method, "scope": scope, "by_threshold": by_threshold, "exclude": tuple(exclude),
         "sparsity": None, "threshold": None, "nm": "2:4", "norm": 1, "columns": (left, right),
         "tau": (step, top_tau, decimals)}
    if not (method == "nm" or by_threshold):
        w["sparsity"] = _sparsity_slider(left, disabled=False)
    if by_threshold:
        w["threshold"] = _threshold_slider(right, w, disabled=False)
    if method == "nm":
        w["nm"] = st.selectbox("N:M pattern", NM_PATTERNS, key="prune_nm", bind="query-params")
    elif method == "structured":
        w["norm"] = st.radio("Rank units by", [1, 2], format_func=lambda p: f"L{p} norm", key="prune_norm",
                             horizontal=True, bind="query-params")
    return w


SPARSITY_LABEL = "Sparsity (fraction of weights removed; structured: of units)"
THRESHOLD_LABEL = "Threshold τ (keep |w| > τ)"


def _sparsity_slider(column, disabled: bool) -> float:
    return column.slider(SPARSITY_LABEL, 0.0, 1.0, 0.5, 0.01, key="sparsity", bind="query-params", disabled=disabled)


def _threshold_slider(column, w: dict, disabled: bool) -> float:
    step, top_tau, decimals = w["tau"]
    default = round(round(min(0.05, top_tau / 2) / step) * step, decimals)
    return column.slider(THRESHOLD_LABEL, 0.0, top_tau, default, step, format=f"%.{decimals}f", key="threshold",
                         bind="query-params", disabled=disabled)


def _disabled_in_force(w: dict, view: Preview) -> None:
    """Draw each disabled slider as a read-only twin showing the value the active control put in force.

    The twin has its own key and no URL binding: a value written into the URL-bound slider would lose to the
    URL on a shared link's first run, and every such write became a browser-history entry. The user's own value
    of the bound slider is kept in the session for when it is enabled again; the URL holds the active control.
    """
    left, right = w["columns"]
    step, top_tau, decimals = w["tau"]
    if w["sparsity"] is None:  # by threshold, or N:M: the sparsity is what they produced
        _keep("sparsity")
        st.session_state["sparsity_in_force"] = w["sparsity"] = round(view.sparsity, 2)
        left.slider(SPARSITY_LABEL, 0.0, 1.0, step=0.01, key="sparsity_in_force", disabled=True,
                    help="in force: the sparsity the threshold or the N:M pattern produces")
    if w["threshold"] is None:
        _keep("threshold")
        if w["method"] == "magnitude":  # by sparsity: the τ that sparsity needs
            tau = min(round(round(view.threshold / step) * step, decimals), top_tau)
            help_text = "in force: the largest |w| the sparsity removes"
        else:
            tau, help_text = 0.0, "structured and N:M pruning use no threshold"
        st.session_state["threshold_in_force"] = w["threshold"] = tau
        right.slider(THRESHOLD_LABEL, 0.0, top_tau, step=step, format=f"%.{decimals}f", key="threshold_in_force",
                     disabled=True, help=help_text)


def _keep(key: str) -> None:
    """Keep a slider's value while it is not drawn (Streamlit forgets the state of widgets not drawn in a run)."""
    if key in st.session_state:
        st.session_state[key] = st.session_state[key]


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
    cards[0].metric("Accuracy (held-out)", readable.percent(acc, 2), f"{readable.points(acc - base_acc)} vs dense",
                    help=f"dense {readable.percent(base_acc, 2)}. {readable.one_image(view.evaluation.samples)}")
    cards[1].metric("Non-zero parameters", f"{view.nonzero_params:,}", f"of {baseline.params:,} · "
                    f"{view.sparsity:.1%} of weights pruned", delta_color="off", delta_arrow="off")
    if view.latency_ms is not None:
        how = view.latency_method
        cards[2].metric(f"Latency, masked model ({how['latency_stat']} of {view.latency_runs}, batch "
                        f"{how['latency_batch']})", readable.ms(view.latency_ms),
                        latency_verdict(view), delta_color="off", delta_arrow="off",
                        help=f"{how['latency_stat']} of {view.latency_runs} real forward passes after 3 warm-up "
                             f"rounds, the models timed in turns on this server's CPU; runs spread by up to "
                             f"{readable.ms(view.latency_spread_ms)} (p10 to p90)")
    else:
        cards[2].metric("Latency", "—", "not timed for ONNX here", delta_color="off", delta_arrow="off")
    cards[3].metric("Dense file (torch.save)", readable.size(baseline.size_bytes),
                    "same bytes: a zero costs 4 bytes too", delta_color="off", delta_arrow="off",
                    help="the baseline on every page: the masked model's weights written with torch.save, exactly "
                         "as big as the dense one's")
    cards[4].metric("Sparse encoding", readable.size(view.sparse_size_bytes),
                    f"{view.sparse_size_bytes / baseline.size_bytes:.0%} of the dense file", delta_color="off",
                    delta_arrow="off",
                    help="a real torch.save file: non-zero values + a 1-bit mask per weight")
    if view.shrunk_size_bytes is not None:
        removed = baseline.params - view.shrunk_params
        what = ("units removed" if method == "structured" else "dead units removed") if removed else \
            "no whole unit was dead: nothing to remove"
        cards[5].metric("Physically shrunk model", readable.size(view.shrunk_size_bytes),
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
    log_y = row1[0].toggle("Log scale", key="prune_hist_log", value=True, bind="query-params")
    before = space["before"]
    after = kept_histogram({k: view.weights.get(k, w) for k, w in bench.base.items()}, before)
    # N:M and structured have no single τ; otherwise the τ in force, written as the slider writes it
    decimals = threshold_grid(max(float(w.abs().max()) for w in bench.base.values()))[2]
    tau = round(config.threshold if config.threshold is not None else view.threshold, decimals) \
        if config.method == "magnitude" else 0.0
    row1[0].plotly_chart(plots.pruning_histogram(before, after, tau, log_y=log_y, decimals=decimals))
    sizes = {k: w.numel() for k, w in bench.base.items()}
    all_layers = {**{k: 0.0 for k in bench.base}, **view.layer_sparsity}
    row1[1].plotly_chart(plots.layer_sparsity_bars(all_layers, sizes))
    row2 = st.columns(2)
    if config.method == "nm":
        pattern = f"{config.n}:{config.m}"
        curve_title, names = f"N:M {pattern} (◆) beside global magnitude pruning", (f"N:M {pattern}", "global magnitude")
    elif config.method == "structured":
        curve_title, names = "Accuracy vs fraction of units removed", ("current", "structured")
    else:
        curve_title = f"Accuracy vs sparsity ({'global' if config.scope == 'global' else 'per-layer'} magnitude)"
        names = ("current", "magnitude")
    row2[0].plotly_chart(plots.accuracy_curve([p.amount for p in curve], [p.accuracy for p in curve],
                                              (view.sparsity if config.method != "structured" else sparsity, acc),
                                              base_acc, curve_title, current_name=names[0], curve_name=names[1]))
    masked_layers = list(view.masks)
    layer = row2[1].selectbox("Mask of layer", masked_layers, key="prune_mask_layer", bind="query-params")
    row2[1].plotly_chart(plots.mask_heatmap(mask_grid(view.masks[layer]), layer, tuple(view.masks[layer].shape)))
    st.caption(f"{len(curve)} points measured on held-out data with one working copy of the model · "
               "histograms are computed on the server (100 bins); the heat-map shows one cell per weight, at most "
               "the first 64 units × 64 inputs")
    if config.method == "nm":
        _nm_tail_note(view, config)


def _nm_tail_note(view: Preview, config: PruneConfig) -> None:
    """Say why N:M sparsity can miss n/m: a layer whose inputs are not a multiple of m keeps its short tail group."""
    tails = {k.rsplit(".", 1)[0]: mask.reshape(mask.shape[0], -1).shape[1] for k, mask in view.masks.items()
             if mask.reshape(mask.shape[0], -1).shape[1] % config.m}
    if tails:
        listed = ", ".join(f"{layer} has {cols} inputs ({cols % config.m} left over)" for layer, cols in tails.items())
        st.caption(f"{config.n}:{config.m} removes {readable.percent(view.sparsity)} rather than "
                   f"{readable.percent(1 - config.n / config.m, 0)}: {listed}; the short group at the end of each "
                   f"row keeps up to {config.n} weights, so it loses fewer than {config.m - config.n} of {config.m}.")


def latency_verdict(view: Preview) -> str:
    """The card's line: the dense time and one short reading of masked vs dense."""
    return f"dense {readable.ms(view.dense_latency_ms)} · {_reading(view)}"


def _reading(view: Preview) -> str:
    """Masked vs dense, read once for the card and the text under it."""
    spread = view.latency_spread_ms or 0.0
    if spread > 0.5 * min(view.latency_ms, view.dense_latency_ms or view.latency_ms):
        return "too noisy to compare"
    if view.same_speed_as_dense:
        return "same within timer noise"
    return f"{view.latency_ms / view.dense_latency_ms:.2f}× dense: timer noise, not the zeros"


def _latency_details(view: Preview) -> str:
    return (f"the runs spread by up to {readable.ms(view.latency_spread_ms or 0.0)} (p10 to p90) while other work "
            "shares this server's CPU; a dense multiply costs the same with or without zeros")


def why_not_faster(view: Preview) -> None:
    """Plain words, with the measured times."""
    st.subheader("Why is the pruned model not faster?")
    if view.latency_ms is not None:
        verdict = f"{_reading(view)}: {_latency_details(view)}"
        shrunk_line = (f" The physically shrunk model (units removed, smaller matrices) took "
                       f"**{readable.ms(view.shrunk_latency_ms)}**." if view.shrunk_latency_ms is not None else "")
        st.markdown(
            f"The masked model ran in **{readable.ms(view.latency_ms)}**, the dense one in "
            f"**{readable.ms(view.dense_latency_ms)}** ({verdict}). A dense matrix multiply does every multiplication "
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
        if st.toggle("Run the scan", key="prune_scan", bind="query-params"):
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
            # The drop each layer costs alone at its suggested sparsity, read off the scan: it says why a layer
            # that is sensitive at 99% can still take more at 94% than a bigger layer.
            drops = {layer: np.interp(a, scan.amounts, [scan.baseline_accuracy - acc for acc in row])
                     for (layer, a), row in zip(allocation.layer_amounts, scan.accuracy)}
            st.dataframe(pd.DataFrame([{"layer": k.rsplit(".", 1)[0], "weights": readable.count(sizes[k]),
                                        "suggested sparsity": readable.percent(a),
                                        "drop alone at that sparsity (scan)": readable.points(-drops[k])}
                                       for k, a in allocation.layer_amounts]), hide_index=True)
            samples = allocated.evaluation.samples
            images = round((allocated.evaluation.accuracy - uniform.evaluation.accuracy) * samples)
            chance = abs(images) <= 3
            ours, theirs = (readable.percent(p.evaluation.accuracy, 2) for p in (allocated, uniform))
            st.markdown(f"At {target:.0%} overall: suggested allocation **{ours}** vs global magnitude **{theirs}** "
                        f"(both measured): {images:+d} test images of {samples:,}" +
                        (", a difference of a few images is chance: neither is better here." if chance else "."))
