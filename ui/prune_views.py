"""The Pruning page's measured views: the metric cards, the figures, why masked is not faster, the sensitivity scan."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import streamlit as st

from compression.core import readable
from compression.plots import pruning as plots
from compression.calibration import WeightLayers, input_norms
from ui import why_views
from ui.prune_sections import calibration
from compression.pruning import (
    CURVE_AMOUNTS,
    Baseline,
    Preview,
    PruneConfig,
    accuracy_curve,
    kept_histogram,
    mask_grid,
    preview,
    sensitivity_scan,
    suggest_allocation,
)


def metric_cards(view: Preview, baseline: Baseline, method: str) -> None:
    """Accuracy, non-zeros, latency; dense file vs sparse encoding vs physically shrunk model."""
    acc, base_acc = view.evaluation.accuracy, baseline.evaluation.accuracy
    cards = [c for row in (st.columns(3), st.columns(3)) for c in row]
    cards[0].metric("Accuracy (held-out)", readable.percent(acc, 2), f"{readable.points(acc - base_acc)} vs dense",
                    help=f"dense {readable.percent(base_acc, 2)}")  # one image's worth: the caption below
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


CALIBRATED_AMOUNTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)  # a walk per point: 11, not 22
CURVE_NAMES = {"magnitude": "magnitude", "wanda": "Wanda", "sparsegpt": "SparseGPT", "structured": "structured"}


def method_curves(space: dict, config: PruneConfig, samples: int) -> dict[str, list]:
    """The accuracy-vs-sparsity line of magnitude and of every calibrated method chosen so far (each computed once
    per model, exclusions and calibration size), or the structured line alone."""
    exclude = config.exclude
    if config.method == "structured":
        wanted = [("structured", replace(config, nm=None), CURVE_AMOUNTS)]
    else:
        # beside a calibrated method, magnitude at the same sparsity in every layer: the same allocation, so the
        # lines differ only in which weights go (a global ranking spares small layers: another allocation)
        magnitude = PruneConfig(amount=0.0, scope=config.scope if config.method == "magnitude" else "layer",
                                exclude=exclude)
        wanted = [("magnitude", magnitude, CURVE_AMOUNTS)]
        if config.needs_calibration:
            space["curve_methods"] = space.get("curve_methods", set()) | {config.method}
        for method in ("wanda", "sparsegpt"):
            if method in space.get("curve_methods", ()):
                wanted.append((method, PruneConfig(amount=0.0, method=method, exclude=exclude), CALIBRATED_AMOUNTS))
    curves = {}
    with space["lock"]:
        for method, cfg, amounts in wanted:
            key = (method, cfg.scope, exclude, cfg.norm, samples if cfg.needs_calibration else None)
            if key not in space["curves"]:
                images = calibration(space, samples) if cfg.needs_calibration else None
                space["curves"][key] = accuracy_curve(space["bench"], cfg, amounts, images)
            name = CURVE_NAMES[method] + (f" ({cfg.scope})" if method == "magnitude" else "")
            curves[name] = space["curves"][key]
    return curves


def figures(space: dict, view: Preview, config: PruneConfig, sparsity: float, samples: int) -> None:
    """Histogram with ±τ, per-layer sparsity, accuracy curves with the current point, a mask heat-map."""
    bench, base_acc, acc = space["bench"], space["baseline"].evaluation.accuracy, view.evaluation.accuracy
    curves = method_curves(space, config, samples)

    row1 = st.columns(2)
    log_y = row1[0].toggle("Log scale", key="prune_hist_log", value=True, bind="query-params")
    before = space["before"]
    after = kept_histogram({k: view.weights.get(k, w) for k, w in bench.base.items()}, before)
    # one τ only for unstructured magnitude pruning; written as the slider writes it
    decimals = space["tau"][2]
    tau = round(config.threshold if config.threshold is not None else view.threshold, decimals) \
        if config.method == "magnitude" and config.nm is None else 0.0
    row1[0].plotly_chart(plots.pruning_histogram(before, after, tau, log_y=log_y, decimals=decimals))
    sizes = {k: w.numel() for k, w in bench.base.items()}
    all_layers = {**{k: 0.0 for k in bench.base}, **view.layer_sparsity}
    row1[1].plotly_chart(plots.layer_sparsity_bars(all_layers, sizes))
    row2 = st.columns(2)
    label = CURVE_NAMES[config.method]
    if config.nm:
        pattern = f"{config.nm[0]}:{config.nm[1]}"
        curve_title, current_name = f"{label} {pattern} (◆) beside unstructured pruning", f"{label} {pattern}"
    elif config.method == "structured":
        curve_title, current_name = "Accuracy vs fraction of units removed", "current"
    else:
        curve_title, current_name = "Accuracy vs sparsity, one line per method", f"{label} (current)"
    row2[0].plotly_chart(plots.accuracy_curves(
        {name: ([p.amount for p in c], [p.accuracy for p in c]) for name, c in curves.items()},
        (view.sparsity if config.method != "structured" else sparsity, acc), base_acc, curve_title,
        current_name=current_name))
    masked_layers = list(view.masks)
    layer = row2[1].selectbox("Mask of layer", masked_layers, key="prune_mask_layer", bind="query-params")
    row2[1].plotly_chart(plots.mask_heatmap(mask_grid(view.masks[layer]), layer, tuple(view.masks[layer].shape)))
    calibrated = [n for n in curves if n in ("Wanda", "SparseGPT")]
    st.caption(f"Every point measured on held-out data with one working copy of the model"
               + (f"; {' and '.join(calibrated)} calibrated on {samples:,} training images, layer by layer"
                  if calibrated else "; choose Wanda or SparseGPT above to add its line")
               + " · histograms are computed on the server (100 bins); the heat-map shows one cell per weight, at "
               "most the first 64 units × 64 inputs")
    if config.nm:
        _nm_tail_note(view, config)
    outlier_note(space, config, samples)
    if config.method != "structured" and bench.model.module is not None:
        why = PruneConfig(method="sparsegpt", nm=config.nm) if config.nm else \
            PruneConfig(amount=min(config.amount if config.amount is not None else view.sparsity, 1.0),
                        method="sparsegpt")
        why_views.classifier_pruning(bench.model, calibration(space, samples), layer, why, "prune_why")


def outlier_note(space: dict, config: PruneConfig, samples: int) -> None:
    """Why Wanda gains nothing on these models, measured: their layers have no outlier input channels."""
    if config.method not in ("wanda", "sparsegpt") or space["bench"].model.module is None:
        return
    with space["lock"]:
        if samples not in space.setdefault("spread", {}):
            norms = input_norms(space["bench"].model.module, WeightLayers(), calibration(space, samples))
            space["spread"][samples] = {k.rsplit(".", 1)[0]: channel_spread(v) for k, v in norms.items()}
        spread = space["spread"][samples]
    listed = ", ".join(f"{layer} {ratio:.1f}×" for layer, ratio in spread.items())
    st.caption(f"**Why Wanda does not help here:** its score |W|·‖X_j‖ differs from |W| only where a few input "
               f"channels are far louder than the rest. Measured on these {samples:,} images, the loudest input "
               f"channel of each layer is {listed} the median live channel; a language model such as SmolLM2 has "
               "channels 20–77× the median. So Wanda ranks almost like magnitude, but within each output row, "
               "which forces every unit to lose the same share. **SparseGPT** keeps accuracy because it updates "
               "the surviving weights to absorb each pruned weight's error.")


def channel_spread(norms) -> float:
    """The loudest input channel's norm over the median of the channels that ever fire."""
    live = norms[norms > 0]
    return float(live.max() / live.median()) if live.numel() else 0.0


def _nm_tail_note(view: Preview, config: PruneConfig) -> None:
    """Say why N:M sparsity can miss n/m: a layer whose inputs are not a multiple of m keeps its short tail group."""
    n, m = config.nm
    tails = {k.rsplit(".", 1)[0]: mask.reshape(mask.shape[0], -1).shape[1] for k, mask in view.masks.items()
             if mask.reshape(mask.shape[0], -1).shape[1] % m}
    if tails:
        listed = ", ".join(f"{layer} has {cols} inputs ({cols % m} left over)" for layer, cols in tails.items())
        st.caption(f"{n}:{m} removes {readable.percent(view.sparsity)} rather than "
                   f"{readable.percent(1 - n / m, 0)}: {listed}; the short group at the end of each "
                   f"row keeps up to {n} weights, so it loses fewer than {m - n} of {m}.")


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
