"""The Pruning page's sections; kept in an imported module so Streamlit compiles it once, not on every rerun."""

from __future__ import annotations

import math

import streamlit as st

from compression.calibration import calibration_images
from compression.core import InputError
from compression.models import Workbench
from compression.pruning import (
    CALIBRATION_SAMPLES,
    Preview,
    PruneConfig,
    measure_baseline,
    preview,
    weights_histogram,
)
from ui.caching import session_lock

# Labels are what the URL keeps (?prune_method=SparseGPT), so they stay short.
METHODS = {"magnitude": "magnitude", "Wanda": "wanda", "SparseGPT": "sparsegpt", "structured": "structured"}
PATTERNS = ("unstructured", "2:4", "1:4", "4:8", "1:2")
SCOPES = ["global", "layer", "row"]
CALIBRATION_CHOICES = (64, 128, 256, 512, 1024, 2048)


def concept() -> None:
    """The formulas, for students."""
    with st.expander("Concept: the formulas"):
        st.markdown("**Magnitude pruning** keeps the weights whose size exceeds a threshold τ:")
        st.latex(r"W_{\text{pruned}} = \{\, w \in W : |w| > \tau \,\}, \qquad m_i = \mathbb{1}[\,|w_i| > \tau\,], "
                 r"\quad \hat W = m \odot W")
        st.markdown("A **target sparsity** s picks τ as the s-quantile of |w| — per layer, or over all layers at once "
                    "(**global**: layers with many small weights give up more):")
        st.latex(r"\tau_s = \text{quantile}_s\big(\{|w|\}\big), \qquad s = \frac{\#\{i : m_i = 0\}}{\#W}")
        st.markdown("**Wanda** (Sun et al., 2023) scores each weight by its size times the norm of its input channel "
                    "over calibration images, and prunes the lowest scores of each output row; it changes no weight:")
        st.latex(r"S_{ij} = |W_{ij}| \cdot \lVert X_j \rVert_2")
        st.markdown("**SparseGPT** (Frantar & Alistarh, 2023) prunes column by column and **updates the surviving "
                    "weights** so the layer's output on the calibration images changes as little as possible — the "
                    "Optimal Brain Surgeon step, with the inverse Hessian of the layer's squared output error:")
        st.latex(r"\delta W_{:,j+1:} = -\frac{w_{:,j} - \hat w_{:,j}}{[H^{-1}]_{jj}}\,H^{-1}_{j,j+1:}, "
                 r"\qquad H = 2XX^\top")
        st.markdown("Both calibrate **layer by layer**: each layer sees the inputs the already-pruned layers before "
                    "it produce, from a few hundred training images (never the test images).")
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
    lock = session_lock("prune")
    with lock:
        cache = st.session_state.setdefault("prune_workspace", {})
        if cache.get("model") is not model:
            bench = Workbench(model)
            cache.clear()
            cache.update(model=model, bench=bench, baseline=measure_baseline(bench), curves={}, scan=None,
                         rankings={}, before=weights_histogram(bench.base), lock=lock, calibration={},
                         tau=threshold_grid(max(float(w.abs().max()) for w in bench.base.values())))
    return cache


def calibration(space: dict, count: int):
    """The calibration images for `count` (chosen once per model and count, reused by every slider move)."""
    images = space["calibration"]
    if count not in images:
        images[count] = calibration_images(space["model"].dataset, count)
    return images[count]


def controls(space: dict, is_onnx: bool) -> tuple[PruneConfig, Preview, dict]:
    """Method, scope, sliders -> a config and its measured preview (st.stop() with a message on bad input).

    A disabled control shows the value in force: it is drawn after the measurement, set to what the active
    control produced (the sparsity a threshold gives, the τ a sparsity gives), so the URL holds it too.
    """
    w = _widgets(space)
    if w["method"] != "magnitude" and is_onnx:
        st.info(f"{w['method'].capitalize()} pruning needs a PyTorch model (an ONNX graph would have to be rewritten, "
                "or run layer by layer for calibration). Magnitude pruning, N:M included, works on this model.")
        st.stop()
    try:
        config = _config(w)
        view = _measured(space, config, w["samples"])
    except InputError as exc:
        st.error(str(exc))
        st.stop()
    _disabled_in_force(w, view)
    _warn_extremes(w, view)
    return config, view, {"method": w["method"], "sparsity": w["sparsity"], "accuracy": view.evaluation.accuracy,
                          "samples": w["samples"]}


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
    top = st.columns([3, 3, 2, 3])
    method = METHODS[top[0].selectbox("Method", list(METHODS), key="prune_method", bind="query-params",
                                      help="magnitude: the smallest |w| · Wanda: |w| × input norm · SparseGPT: "
                                           "prune and update the rest to absorb the error · structured: whole "
                                           "neurons, filters or heads")]
    calibrated = method in ("wanda", "sparsegpt")
    scope_help = ("magnitude: one threshold for all layers · the same sparsity in every layer · in every output "
                  "row. Wanda ranks within rows and SparseGPT within blocks of columns.")
    if method == "magnitude":
        scope = top[1].radio("Scope", SCOPES, key="prune_scope", horizontal=True, bind="query-params",
                             help=scope_help)
    else:  # a read-only twin shows the ranking in force; the user's magnitude scope is kept for later
        _keep("prune_scope")
        st.session_state["prune_scope_in_force"] = scope = "layer" if method == "structured" else "row"
        top[1].radio("Scope", SCOPES, key="prune_scope_in_force", horizontal=True, disabled=True, help=scope_help)
    if method == "magnitude":
        by = top[2].radio("Prune by", ["sparsity", "threshold"], key="prune_by", horizontal=True,
                          bind="query-params", help="A target fraction of zeros, or the textbook |w| > τ")
    else:  # the other methods prune by sparsity: a read-only twin says so (see _disabled_in_force)
        _keep("prune_by")
        st.session_state["prune_by_in_force"] = by = "sparsity"
        top[2].radio("Prune by", ["sparsity", "threshold"], key="prune_by_in_force", horizontal=True, disabled=True,
                      help=f"{method} prunes by sparsity")
    exclude = top[3].multiselect("Leave dense (exclude)", layers, key="prune_exclude", bind="query-params",
                                 help="e.g. the first and last layers, which are often the most sensitive")
    pattern = "unstructured"
    options = st.columns([2, 2, 4])
    if method != "structured":
        pattern = options[0].selectbox("Pattern", PATTERNS, key="prune_pattern", bind="query-params",
                                       help="unstructured: any weight · N:M: keep N of every M consecutive inputs "
                                            "(2:4 is what sparse tensor cores run)")
    by_threshold = method == "magnitude" and by == "threshold" and pattern == "unstructured"
    samples = CALIBRATION_SAMPLES
    if calibrated:
        samples = options[1].selectbox("Calibration images", CALIBRATION_CHOICES,
                                       index=CALIBRATION_CHOICES.index(CALIBRATION_SAMPLES), key="prune_calib",
                                       bind="query-params",
                                       help="Training images (never test images) whose layer inputs "
                                            f"{'Wanda' if method == 'wanda' else 'SparseGPT'} fits its choices to")
    left, right = st.columns(2)
    w = {"method": method, "scope": scope if method == "magnitude" else "global", "by_threshold": by_threshold,
         "exclude": tuple(exclude), "sparsity": None, "threshold": None, "pattern": pattern, "norm": 1,
         "columns": (left, right), "tau": space["tau"], "samples": int(samples)}
    if pattern == "unstructured" and not by_threshold:
        w["sparsity"] = _sparsity_slider(left, disabled=False)
    if by_threshold:
        w["threshold"] = _threshold_slider(right, w, disabled=False)
    if method == "structured":
        w["norm"] = options[0].radio("Rank units by", [1, 2], format_func=lambda p: f"L{p} norm", key="prune_norm",
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
        if w["method"] == "magnitude" and w["pattern"] == "unstructured":  # by sparsity: the τ that sparsity needs
            tau = min(round(round(view.threshold / step) * step, decimals), top_tau)
            help_text = "in force: the largest |w| the sparsity removes"
        else:
            tau, help_text = 0.0, f"{w['method']} pruning uses no single threshold"
        st.session_state["threshold_in_force"] = w["threshold"] = tau
        right.slider(THRESHOLD_LABEL, 0.0, top_tau, step=step, format=f"%.{decimals}f", key="threshold_in_force",
                     disabled=True, help=help_text)


def _keep(key: str) -> None:
    """Keep a slider's value while it is not drawn (Streamlit forgets the state of widgets not drawn in a run)."""
    if key in st.session_state:
        st.session_state[key] = st.session_state[key]


def _config(w: dict) -> PruneConfig:
    if w["pattern"] != "unstructured":
        n, m = (int(p) for p in w["pattern"].split(":"))
        return PruneConfig(method=w["method"], nm=(n, m), scope=w["scope"], exclude=w["exclude"])
    if w["by_threshold"]:
        return PruneConfig(threshold=w["threshold"], scope=w["scope"], exclude=w["exclude"])
    return PruneConfig(amount=w["sparsity"], method=w["method"], scope=w["scope"], exclude=w["exclude"],
                       norm=w["norm"])


def _measured(space: dict, config: PruneConfig, samples: int) -> Preview:
    """The preview of `config`, computed once per setting (other widgets on the page rerun without it)."""
    with space["lock"]:
        key = (config, samples if config.needs_calibration else None)
        if space.get("last_config") != key:
            images = calibration(space, samples) if config.needs_calibration else None
            space.update(last_config=key, last_view=preview(space["bench"], config, space["baseline"],
                                                            rankings=space["rankings"], calibration=images))
        return space["last_view"]


def _warn_extremes(w: dict, view: Preview) -> None:
    if w["by_threshold"] and view.sparsity >= 1.0:
        st.warning(f"τ = {w['threshold']:.4f} is above every weight: all "
                   f"{sum(m.numel() for m in view.masks.values()):,} weights are removed and the model can only "
                   "guess.")
    elif w["sparsity"] is not None and w["sparsity"] >= 1.0 and w["method"] == "magnitude":
        st.warning("Sparsity 100%: every prunable weight is zero, so the model outputs its biases only.")
    elif w["method"] == "structured" and w["sparsity"] is not None and w["sparsity"] >= 1.0:
        st.warning("Structured pruning keeps at least one unit per layer so the model still has a path to the "
                   "output.")
