"""Why each method works, drawn from compression.pipeline.explain's results: the same views on the Language-model,
Pruning and Quantization pages (one layer, its calibration inputs, every method on the same weights)."""

from __future__ import annotations

import streamlit as st

from compression.calibration import WeightLayers
from compression.core import InputError
from compression.pipeline import (OneLayer, PruneWhy, QuantWhy, SmoothWhy, explain_pruning, explain_quantization,
                                  one_layer)
from compression.plots import why as plots_why
from compression.pruning import PruneConfig
from compression.quantization import QuantConfig
from ui.caching import config_key, model_token, remembered

COLORS = {"round-to-nearest": "#9d9da1", "GPTQ": "#4c78a8", "magnitude": "#9d9da1", "Wanda": "#f58518",
          "SparseGPT's mask, no update": "#f2a6a6", "SparseGPT": "#e45756"}


def _times(a: float, b: float) -> str:
    """'4.1× lower' for a/b: how much lower b is than a."""
    return f"{a / b:.1f}× lower" if b > 0 else "exact"


def _e(v: float) -> str:
    """A relative error, one way on every view: 0.031 or 8.1e-04."""
    return f"{v:.2g}" if v >= 0.01 else f"{v:.1e}"


def _measured(tokens: int, inputs: int, layer: str, unit: str = "tokens") -> str:
    """Where the numbers come from, and when so few rows let a calibrated method fit them exactly. `unit` names a
    row of the layer's input: a language model's tokens, a classifier's images (or, for a conv, image patches)."""
    held_out = "perplexity" if unit == "tokens" else "accuracy"
    note = (f" With fewer calibration {unit} than the layer has inputs ({tokens:,} < {inputs:,}), GPTQ and SparseGPT "
            f"can fit these very {unit} almost exactly: their error here is flattered, and the held-out {held_out} "
            "says what carries over." if tokens < inputs else "")
    return f"Measured on {tokens:,} calibration {unit} of the dense model's input to {layer}.{note}"


def gptq_view(why: QuantWhy, key: str, unit: str = "tokens") -> None:
    """GPTQ's error push along one row, and the output errors it trades its weight errors for."""
    st.plotly_chart(plots_why.gptq_row(why.to_dict()), key=f"{key}_row")
    rtn, gptq = why.row_error["round-to-nearest"], why.row_error["GPTQ"]
    st.markdown(
        f"Round-to-nearest rounds each weight alone. GPTQ rounds one column, then moves the weights it has not "
        f"rounded yet (orange bars) so that the row's *output* on the calibration inputs makes up for that rounding "
        f"error. Its weights end further from the originals (mean |ŵ − w| {why.weight_error['GPTQ']:.2g} vs "
        f"{why.weight_error['round-to-nearest']:.2g} in this row), yet its output error is **{_times(rtn, gptq)}**: "
        f"{_e(gptq)} vs {_e(rtn)} (‖X(w − ŵ)‖² / ‖Xw‖²). GPTQ lowers the output error of "
        f"{why.rows_better:.0%} of the {why.rows} rows.")
    st.plotly_chart(plots_why.error_bars({f"row {why.row}": why.row_error, "whole layer": why.layer_error}, COLORS,
                                         f"{why.layer}: relative output error at {why.bits} bits"), key=f"{key}_err")
    st.caption(f"Row {why.row} is the median row by the ratio of the two errors (a typical row, not the best one). "
               + _measured(why.tokens, why.inputs, why.layer, unit))


def sparsegpt_view(why: PruneWhy, key: str, unit: str = "tokens") -> None:
    """SparseGPT's updates of one row's survivors, and the errors of magnitude, Wanda and SparseGPT side by side."""
    st.plotly_chart(plots_why.sparsegpt_row(why.to_dict()), key=f"{key}_row")
    e = why.row_error
    mask_only = e["SparseGPT's mask, no update"]
    st.markdown(
        f"Pruning a weight loses its contribution to the output (red bars). SparseGPT chooses its mask from the "
        f"weights and the inverse Hessian of the inputs, then **updates the weights it keeps** (blue bars) to make up "
        f"for what it removed. In this row the mask alone leaves an output error of "
        f"{_e(mask_only)}; with the updates {_e(e['SparseGPT'])} "
        f"(magnitude, removing as many weights from this row: {_e(e['magnitude'])}; Wanda {_e(e['Wanda'])}).")
    st.plotly_chart(plots_why.error_bars({f"row {why.row}": why.row_error, "whole layer": why.layer_error}, COLORS,
                                         f"{why.layer}: relative output error at {why.pattern}"), key=f"{key}_err")
    st.caption(f"Row {why.row} is the median row by how much the updates lower its error. Magnitude and Wanda rank "
               "within each row; SparseGPT's unstructured mask is chosen per block of 128 columns over all rows. "
               + _measured(why.tokens, why.inputs, why.layer, unit))


def wanda_view(why: PruneWhy, key: str, unit: str = "tokens") -> None:
    """Per input channel, the weights Wanda keeps that magnitude drops, beside the channel's input norm."""
    st.plotly_chart(plots_why.wanda_channels(why.to_dict()), key=f"{key}_channels")
    moved = sum(why.wanda_only)
    weights = "weight" if moved == 1 else "weights"
    norms = sorted(why.input_norm)
    spread = max(norms) / norms[len(norms) // 2] if norms and norms[len(norms) // 2] > 0 else float("inf")
    loud = max(range(len(why.input_norm)), key=why.input_norm.__getitem__) if norms else 0
    e = why.layer_error
    st.markdown(
        f"Wanda scores each weight by |W_ij|·‖X_j‖. It keeps **{moved:,}** {weights} of this layer that magnitude "
        f"drops (and drops as many that magnitude keeps). They gather on the loud channels: channel {loud}'s "
        f"input norm is {spread:.1f}× the median channel's, and Wanda keeps {why.wanda_only[loud]:,} of its weights "
        f"that magnitude would drop. The layer's output error: magnitude {_e(e['magnitude'])}, Wanda "
        f"{_e(e['Wanda'])}. Where no channel is much louder than the rest, the two scores rank nearly alike.")
    st.caption(f"Both at {why.pattern}, ranked within each row. " + _measured(why.tokens, why.inputs, why.layer, unit))


def smoothing_view(why: SmoothWhy, key: str) -> None:
    """Each channel's range before and after smoothing, and the activation grid with and without the outlier."""
    left, right = st.columns(2)
    left.plotly_chart(plots_why.channel_ranges(why.act_max, why.act_max_smoothed, why.outlier,
                                               f"{why.layer}: activations, max |x| per channel", "max |x| (log)",
                                               "after smoothing"), key=f"{key}_acts")
    right.plotly_chart(plots_why.channel_ranges(why.weight_max, why.weight_max_smoothed, why.outlier,
                                                f"{why.layer}: weights, max |w| per input channel", "max |w| (log)",
                                                "after smoothing"), key=f"{key}_weights")
    naive, smooth = why.error.values()
    m = st.columns(3)
    per_token = "per-token" in why.label
    m[0].metric("Activation step, every channel", f"{why.step:.3g}",
                help="the grid's step: max |x| / (2^(bits−1) − 1)" + (
                    f"; per token, the median over the {why.step_tokens:,} tokens whose largest value is in channel "
                    f"{why.outlier}" if per_token else ", one for the whole tensor"))
    m[1].metric(f"Without channel {why.outlier}", f"{why.step_without_outlier:.3g}",
                f"{why.step / why.step_without_outlier:.1f}× finer" if why.step_without_outlier else None,
                delta_color="off", delta_arrow="off")
    m[2].metric("After smoothing", f"{why.step_smoothed:.3g}",
                f"{why.step / why.step_smoothed:.1f}× finer" if why.step_smoothed else None, delta_color="off",
                delta_arrow="off")
    applies = ("" if why.applies else
               " No norm feeds this linear, so the W·A· runs here leave it in float: the view shows what smoothing "
               "would do to it.")
    st.markdown(
        f"Channel {why.outlier} reaches {why.outlier_ratio:.1f}× the median channel's max |x|. One grid spans every "
        f"channel, so that channel alone sets its step and the other channels' values fall on a few levels. "
        f"SmoothQuant divides each channel by s_j (folded into the norm before it) and multiplies the weights' input "
        f"channel by it: the product is unchanged, the activations' range shrinks and the weights take the "
        f"outlier. W·A· output error of this linear ({why.label}): naive {_e(naive)}, SmoothQuant {_e(smooth)}."
        + applies)
    st.caption(f"Measured on {why.tokens:,} calibration tokens of the dense model's input to {why.layer}.")


def weight_layer(module, images, weight_name: str) -> OneLayer:
    """One weight layer of a classifier (a state-dict weight name such as "fc1.weight") with its inputs on
    `images`, as the calibrated methods see it (a conv's inputs unfolded into patches)."""
    layer = weight_name.rsplit(".", 1)[0]
    names = [block.name for block in WeightLayers().blocks(module)]
    if layer not in names:
        raise InputError(f"{weight_name} is not a Linear or Conv weight")
    return one_layer(module, WeightLayers(), images, names.index(layer), layer)


def _unit(rows: int, images: int) -> str:
    """What one row of a classifier layer's input is: an image for a Linear, a patch of one for a Conv2d (unfolded)."""
    return "images" if rows == images else "image patches"


def _shown(label: str, key: str) -> bool:
    """A toggle (kept in the URL): the views are drawn, and redrawn on every slider move, only once asked for."""
    return st.toggle(label, key=key, bind="query-params",
                     help="Charts of one layer, computed on the calibration images; off, they cost the page nothing.")


def classifier_quantization(model, images, weight_name: str, config: QuantConfig, key: str) -> None:
    """The Quantization page's view: GPTQ beside round-to-nearest on the chosen layer, at the page's grid."""
    if not _shown("Why GPTQ beats round-to-nearest: one row of this layer", key):
        return
    try:
        why = remembered("why_quant", (model_token(model, "why"), weight_name, config_key(config), len(images)),
                         lambda: explain_quantization(weight_layer(model.module, images, weight_name), config))
    except InputError as exc:
        st.info(str(exc))
        return
    gptq_view(why, key, _unit(why.tokens, len(images)))


def classifier_pruning(model, images, weight_name: str, config: PruneConfig, key: str) -> None:
    """The Pruning page's views on the chosen layer: SparseGPT's updates of one row, and where Wanda and
    magnitude disagree, at the page's sparsity or N:M pattern."""
    if not _shown("Why SparseGPT keeps accuracy, and what Wanda changes: the layer of the mask above", key):
        return
    try:
        why = remembered("why_prune", (model_token(model, "why"), weight_name, config.amount, config.nm, len(images)),
                         lambda: explain_pruning(weight_layer(model.module, images, weight_name), config))
    except InputError as exc:
        st.info(str(exc))
        return
    left, right = st.tabs(["SparseGPT vs magnitude", "Wanda vs magnitude"])
    with left:
        sparsegpt_view(why, f"{key}_sparsegpt", _unit(why.tokens, len(images)))
    with right:
        wanda_view(why, f"{key}_wanda", _unit(why.tokens, len(images)))
