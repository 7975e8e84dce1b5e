"""The Quantization page's main views: concept panel, controls, live metrics and figures, size and speed."""

from __future__ import annotations

from dataclasses import dataclass, replace

import streamlit as st

from compression.core import InputError, readable
from compression.models import LoadedModel, Workbench
from compression.plots import quantization as plots_quant
from compression.calibration import calibration_images
from compression.quantization import (
    CALIBRATION_SAMPLES,
    GRANULARITIES,
    RANGES,
    SCHEMES,
    QuantConfig,
    QuantResult,
    accuracy_vs_bits,
    compare_speed,
    layer_view,
    quantize,
    worked_example,
)
from ui import quantize_sections as sections
from ui import why_views
from ui.caching import config_key, model_token, remembered, session_lock


def concept() -> None:
    """Formulas and a tiny worked example, for students."""
    with st.expander("Concept: rounding weights to a grid"):
        st.markdown("Quantization stores each weight as a small integer **code** on an evenly spaced grid with step "
                    "**Δ** (the *scale*). Symmetric, with b bits:")
        st.latex(r"\Delta = \frac{\max|w|}{2^{b-1}-1},\qquad q = \mathrm{clamp}\!\left(\mathrm{round}(w/\Delta),\,"
                 r"-2^{b-1},\,2^{b-1}-1\right),\qquad \hat w = q\,\Delta")
        st.markdown("Asymmetric adds a **zero point** z so the grid can sit off-centre (all of it is used when the "
                    "values are not balanced around 0):")
        st.latex(r"\Delta = \frac{\max w - \min w}{2^{b}-1},\quad z = -\mathrm{round}(\min w/\Delta),\quad "
                 r"q = \mathrm{clamp}(\mathrm{round}(w/\Delta) + z,\,0,\,2^b-1),\quad \hat w = (q - z)\,\Delta")
        st.markdown("The noise this adds is measured by the signal-to-quantization-noise ratio; each extra bit halves "
                    "Δ and adds about 6 dB:")
        st.latex(r"\mathrm{SQNR} = 10\log_{10}\frac{\sum w^2}{\sum (w-\hat w)^2}\ \text{dB} \approx 6.02\,b + c")
        st.markdown("**Per-channel** gives every output channel its own Δ. **Percentile** and **MSE** ranges clip "
                    "rare outliers so the grid is finer where most weights are. At 1 bit, **binary** weights are "
                    r"$\mathrm{sign}(w)\cdot\mathrm{mean}|w|$; at 2 bits, **ternary** weights are $\{-a, 0, +a\}$. "
                    "**QAT** trains with the rounded weights in the forward pass and lets the gradient pass the "
                    r"rounding unchanged (straight-through estimator, $\partial L/\partial w \approx "
                    r"\partial L/\partial \hat w$), updating full-precision master weights.")
        st.markdown("**Per group** gives each run of `group size` consecutive inputs of an output channel its own Δ "
                    "(and zero point): finer grids for a few more bytes of scales.")
        st.markdown("**GPTQ** (Frantar et al., 2022) rounds one input column at a time and pushes its rounding error "
                    "onto the columns not yet rounded, weighted by the inverse Hessian of the layer's squared output "
                    "error on calibration images, so the layer's *output* stays close even where single weights move:")
        st.latex(r"\delta W_{:,j+1:} = -\frac{w_{:,j} - \hat w_{:,j}}{[H^{-1}]_{jj}}\,H^{-1}_{j,j+1:}, "
                 r"\qquad H = 2XX^\top")
        st.markdown("**AWQ** (Lin et al., 2023) multiplies the weights of loud input channels by s = mean|x|^α before "
                    "rounding (and divides the op before by s, so nothing changes in float), then searches a "
                    "clipping ratio per group. On these models no op inside a layer can take the scale, so AWQ "
                    "searches the clipping only; both calibrate layer by layer on training images.")
        bits_demo = min(int(st.session_state.get("bits", 4)), 8)
        scale, _zero, rows = worked_example([-1.2, -0.4, 0.05, 0.3, 0.9, 1.5], bits_demo)
        st.markdown(f"**Worked example** at {bits_demo} bits (symmetric): max|w| = 1.5, so "
                    f"Δ = 1.5 / {max(2 ** (bits_demo - 1) - 1, 1)} = {scale:.4f}.")
        table = [f"| {r.x:.2f} | {r.x_over_scale:.2f} | {r.code} | {r.x_hat:.4f} | {r.error:+.4f} |" for r in rows]
        st.markdown("| w | w / Δ | code q = round(w / Δ) | ŵ = q·Δ | error ŵ − w |\n"
                    "|---:|---:|---:|---:|---:|\n" + "\n".join(table))


METHODS = {"RTN": "rtn", "GPTQ": "gptq", "AWQ": "awq"}
GROUP_SIZES = (8, 16, 32, 64, 128)
CALIBRATION_CHOICES = (64, 128, 256, 512, 1024, 2048)
CALIBRATED_BITS = range(2, 9)  # a calibrated run per point; above 8 bits every method matches fp32 here


@dataclass(frozen=True)
class Settings:
    config: QuantConfig  # the uniform settings (what the accuracy-vs-bits curve varies)
    layer: str
    mixed: bool
    samples: int  # calibration images (GPTQ, AWQ)


def controls(model: LoadedModel) -> Settings:
    """The bits slider (in the URL), scheme, granularity, range, low-bit options and the layer picker."""
    weights = model.weights()
    controls = st.columns([3, 2, 2, 2, 2])
    bits = controls[0].slider("Bits", 1, 16, 4, key="bits", bind="query-params",
                              help="Bits per weight: 2^bits grid levels.")
    method = METHODS[controls[1].selectbox("Method", list(METHODS), key="q_method", bind="query-params",
                                           help="RTN: round each weight to the nearest grid point · GPTQ: round "
                                                "column by column, pushing each error onto the columns not yet "
                                                "rounded · AWQ: scale salient inputs up before rounding, and clip")]
    scheme = controls[2].selectbox("Scheme", SCHEMES, key="q_scheme", bind="query-params")
    granularity = controls[3].selectbox("Granularity", GRANULARITIES, index=1, key="q_granularity",
                                        bind="query-params",
                                        help="one grid per tensor, per output channel, or per group of consecutive "
                                             "inputs of each output channel")
    range_method = controls[4].selectbox("Range", RANGES, key="q_range", bind="query-params",
                                         disabled=method != "rtn",
                                         help="min-max: no clipping; percentile: clip the rarest values; "
                                              "mse: the range with the least squared error (GPTQ and AWQ use "
                                              "min-max grids; AWQ searches its own clipping)")
    options = st.columns([2, 2, 2, 2, 3])
    group_size = options[0].selectbox("Group size", GROUP_SIZES, index=GROUP_SIZES.index(32), key="q_group",
                                      bind="query-params", disabled=granularity != "per-group",
                                      help="inputs per group; a row's last group may be shorter")
    samples = options[1].selectbox("Calibration images", CALIBRATION_CHOICES,
                                   index=CALIBRATION_CHOICES.index(CALIBRATION_SAMPLES), key="q_calib_images",
                                   bind="query-params", disabled=method == "rtn",
                                   help="Training images (never test images) whose layer inputs GPTQ and AWQ fit "
                                        "the rounding to")
    percentile = options[2].number_input("Percentile", 90.0, 100.0, 99.9, 0.1, key="q_percentile", bind="query-params",
                                         disabled=range_method != "percentile" or method != "rtn")
    binary = options[3].toggle("Binary at 1 bit", key="q_binary", bind="query-params", disabled=method != "rtn",
                               help="sign(w) × mean|w| per channel")
    ternary = options[3].toggle("Ternary at 2 bits", key="q_ternary", bind="query-params", disabled=method != "rtn",
                                help="{−a, 0, +a}, threshold 0.7·mean|w|")
    layer = options[4].selectbox("Layer", list(weights), key="q_layer", bind="query-params")
    mixed = st.toggle("Mixed precision (bits per layer, guided by sensitivity)", key="q_mixed", bind="query-params")
    if method != "rtn":
        range_method, binary, ternary = "min-max", False, False
    try:
        config = QuantConfig(bits=bits, scheme=scheme, granularity=granularity, group_size=int(group_size),
                             range_method=range_method, percentile=percentile, binary=binary, ternary=ternary,
                             method=method)
    except InputError as exc:
        st.error(str(exc))
        st.stop()
    if method != "rtn" and model.module is None:
        st.error(f"{method.upper()} needs a PyTorch model: this ONNX graph is quantized by round-to-nearest. "
                 "Choose RTN.")
        st.stop()
    if bits == 1 and not binary and scheme == "symmetric":
        st.warning("A symmetric 1-bit grid is {−Δ, 0}: every positive weight becomes 0. "
                   "Turn on **Binary at 1 bit** (sign × mean|w|) or choose the asymmetric scheme.")
    return Settings(config, layer, mixed, int(samples))


def workbench(model: LoadedModel) -> Workbench:
    """This session's private working copy of the model (and caches that depend only on the model)."""
    token = model_token(model, "q")
    with session_lock("q"):
        if st.session_state.get("q_bench_for") != token:
            st.session_state["q_bench_for"] = token
            st.session_state["q_bench"] = Workbench(model)
            st.session_state["q_curves"] = {}
            st.session_state["q_latency"] = None
            st.session_state["q_calibration"] = {}
            for slot in ("q_results", "q_views", "q_sensitivity"):  # keyed by token anyway: this frees memory
                st.session_state.pop(f"{slot}_cache", None)
    return st.session_state["q_bench"]


def calibration(model: LoadedModel, settings: Settings):
    """The calibration images GPTQ and AWQ use (chosen once per model and count), None for RTN."""
    if not settings.config.needs_calibration:
        return None
    images = st.session_state["q_calibration"]
    if settings.samples not in images:
        images[settings.samples] = calibration_images(model.dataset, settings.samples)
    return images[settings.samples]


def quantized(model: LoadedModel, settings: Settings, bench: Workbench) -> QuantResult:
    """The model quantized as set (mixed precision from the sensitivity table when on), once per configuration:
    a rerun that changes nothing here (a log-scale toggle, another layer) recomputes nothing."""
    base = settings.config
    try:
        layer_bits = sections.mixed_precision(model, base, bench) if settings.mixed else {}
        config = QuantConfig(**{**base.to_dict(), "layer_bits": layer_bits})
        images = calibration(model, settings)
        with session_lock("q"):
            return remembered("q_results", (model_token(model, "q"), config_key(config), settings.samples),
                              lambda: quantize(model, config, bench, images))
    except InputError as exc:
        st.error(str(exc))
        st.stop()


def live_views(model: LoadedModel, settings: Settings, result: QuantResult, bench: Workbench) -> None:
    """Metrics, the layer's histogram with its grid, the error view, accuracy vs bits and SQNR per layer."""
    weights, layer, config, base_config = model.weights(), settings.layer, result.config, settings.config
    view = remembered("q_views", (model_token(model, "q"), config_key(config), layer),
                      lambda: layer_view(weights[layer], result.quantized.qtensors[layer]))
    cols = st.columns(4)
    cols[0].metric("Accuracy (held-out)", readable.percent(result.accuracy, 2),
                   f"{readable.points(result.accuracy - result.baseline_accuracy)} vs fp32", delta_color="normal")
    cols[1].metric("Packed file", readable.size(result.size_bytes),
                   f"{result.baseline_size_bytes / result.size_bytes:.1f}× smaller than fp32", delta_color="off",
                   delta_arrow="off",
                   help=f"{result.size_bytes:,} bytes of a real packed file vs {result.baseline_size_bytes:,} bytes "
                        f"(fp32 {'ONNX' if model.onnx is not None else 'torch.save'})")
    cols[2].metric(f"SQNR of {layer}", "exact" if view.sqnr_db == float("inf") else f"{view.sqnr_db:.1f} dB")
    cols[3].metric("Clipped weights in layer", f"{view.clipped_count:,}",
                   f"{view.clipped_count / weights[layer].numel():.2%}", delta_color="off", delta_arrow="off")
    st.caption(readable.one_image(len(model.dataset.y_test)))

    left, right = st.columns(2)
    qt = result.quantized.qtensors[layer]
    grid_note = " (grid of the widest channel)" if qt.qparams.axis is not None else ""
    log_y = left.toggle("Log scale", key="q_log", bind="query-params")
    title = f"{layer}: weights and the {config.bits_for(layer)}-bit grid{grid_note}"
    left.plotly_chart(plots_quant.quant_histogram(view.hist, view.clipped, view.levels, title, log_y=log_y),
                      key="q_hist")
    title = f"{layer}: quantized vs original ({len(view.original_sample):,} weights)"
    right.plotly_chart(plots_quant.error_view(view.original_sample, view.quantized_sample, title), key="q_error")

    curves = method_curves(model, settings, bench)
    curves.update(sections.qat_curve_points(model, replace(base_config, method="rtn")))
    labels = {1: "binary" if base_config.binary else "", 2: "ternary" if base_config.ternary else ""}
    current, marked_bits = None, base_config.bits
    if config.layer_bits:  # mixed precision: the model in force is on no curve; mark it at its average bits
        marked_bits = average_bits(result, weights)
        current = (marked_bits, result.accuracy, f"mixed precision (average {marked_bits:.1f} bits)")
    left, right = st.columns(2)
    left.plotly_chart(plots_quant.accuracy_vs_bits(curves, result.baseline_accuracy, marked_bits, current=current,
                                                   point_labels=labels), key="q_curve")
    right.plotly_chart(plots_quant.sqnr_bars([r.layer for r in result.layers], [r.sqnr_db for r in result.layers],
                                             [r.bits for r in result.layers]), key="q_sqnr")
    why_gptq(model, settings)


def why_gptq(model: LoadedModel, settings: Settings) -> None:
    """GPTQ beside round-to-nearest on the chosen layer and grid, on the calibration images (whatever the method)."""
    if model.module is None or settings.config.bits < 2:
        return
    images = st.session_state["q_calibration"]
    if settings.samples not in images:
        images[settings.samples] = calibration_images(model.dataset, settings.samples)
    why_views.classifier_quantization(model, images[settings.samples], settings.layer,
                                      replace(settings.config, method="gptq", range_method="min-max"), "q_why")


def method_curves(model: LoadedModel, settings: Settings, bench: Workbench) -> dict:
    """Accuracy vs bits for round-to-nearest and for every calibrated method chosen so far (each once per model,
    grid settings and calibration size)."""
    config = settings.config
    chosen = st.session_state.setdefault("q_curve_methods", set())
    if config.needs_calibration:
        chosen.add(config.method)
    curves = {}
    for method in ("rtn", "gptq", "awq"):
        if method != "rtn" and method not in chosen:
            continue
        variant = replace(config, method=method, range_method="min-max") if method != "rtn" else \
            replace(config, method="rtn")
        samples = settings.samples if method != "rtn" else None
        key = (sections.curve_key(model, variant), samples)
        if key not in st.session_state["q_curves"]:
            images = calibration(model, replace(settings, config=variant))
            bits = CALIBRATED_BITS if method != "rtn" else range(1, 17)
            with session_lock("q"):
                st.session_state["q_curves"][key] = accuracy_vs_bits(model, variant, bits, workbench=bench,
                                                                     calibration=images)
        points = st.session_state["q_curves"][key]
        curves[{"rtn": "RTN", "gptq": "GPTQ", "awq": "AWQ"}[method]] = ([p.bits for p in points],
                                                                     [p.accuracy for p in points])
    return curves


def average_bits(result: QuantResult, weights: dict) -> float:
    """Bits per weight of the model in force, weighted by each layer's size (mixed precision)."""
    sizes = {r.layer: weights[r.layer].numel() for r in result.layers}
    return sum(r.bits * sizes[r.layer] for r in result.layers) / max(sum(sizes.values()), 1)


def run_label(config: QuantConfig) -> str:
    """How a recorded setting is named in the history: method, bits, scheme, grid."""
    how = "PTQ" if config.method == "rtn" else config.method.upper()
    grid = f"g{config.group_size}" if config.granularity == "per-group" else config.granularity
    return f"{how} {config.bits}-bit {config.scheme} {grid}"


def packed_label(result: QuantResult, weights: dict) -> str:
    if result.config.layer_bits:
        return f"packed, mixed (avg {average_bits(result, weights):.1f}-bit)"
    c = result.config
    special = " binary" if c.bits == 1 and c.binary else " ternary" if c.bits == 2 and c.ternary else ""
    return f"packed {c.bits}-bit{special}"


def size_and_speed(model: LoadedModel, result: QuantResult, bench: Workbench) -> None:
    """Real file sizes and measured latency: fp32, fake-quant, packed file, real int8 (once measured)."""
    st.subheader("Size and speed")
    if model.module is not None:
        if st.session_state["q_latency"] is None:
            with session_lock("q"):
                st.session_state["q_latency"] = compare_speed(model, bench, result.weights)
        latency = st.session_state["q_latency"]
        labels = ["fp32", "fake-quant", packed_label(result, model.weights())]
        sizes = [result.baseline_size_bytes, latency.fake_size_bytes, result.size_bytes]
        times = [latency.fp32_ms, latency.fake_ms, None]
        int8 = sections.int8_result(model)
        if int8 is not None:
            labels.append(f"real int8 ({int8.config.mode})")
            sizes.append(int8.measure.size_bytes)
            times.append(latency.int8_ms)
        st.plotly_chart(plots_quant.size_latency_bars(labels, sizes, times), key="q_bars")
        gap = latency.fake_ms / latency.fp32_ms if latency.fp32_ms else 1.0
        speed = ("so it runs as fast as fp32" if 0.8 <= gap <= 1.25 else
                 f"so the {gap:.1f}× gap measured here is timer noise from other work on this server, not the "
                 "rounding")
        st.caption(f"Latency: median ms per batch of {latency.batch} held-out images on this server's CPU after "
                   "warm-up, the models timed in turns (measured once; again with int8). Fake-quant runs the same "
                   f"fp32 kernels on rounded values, {speed}; its torch.save file is fp32's size. The packed file "
                   "holds the codes plus scales (decoded back to fp32 to run). Only real int8 changes the kernels. "
                   "Every file size on this page is against the fp32 torch.save file.")
    else:
        st.plotly_chart(plots_quant.size_latency_bars(["fp32 ONNX", packed_label(result, model.weights())],
                                                      [result.baseline_size_bytes, result.size_bytes], [None, None]),
                        key="q_bars")
