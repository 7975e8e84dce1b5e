"""Language-model views: the Concept panel, one run's details, the outlier channels, and the Model page's LM view."""

from __future__ import annotations

import streamlit as st

from compression.core import InputError
from compression.lm import (
    CORPORA,
    LanguageModel,
    TextSplit,
    calibration_ids,
    channel_max,
    corpus_available,
    layer_roles,
)
from compression.pipeline import fp16_size_bytes
from compression.plots import language_model as plots_lm
from ui.downloads import download_button
from ui.lm_choices import lm_spec
from ui.lm_models import builtin_text, current_lm, dense_generation, dense_perplexity, lm_model, text_key

CONCEPTS = {
    "Magnitude": (r"\widehat W_{ij} = W_{ij}\,\mathbb 1\big[|W_{ij}| \ge \tau_i\big]",
                  ("Zero the smallest weights of each row. Needs no data. It ignores how large each weight's "
                  "*input* is, so a small weight on a loud channel is removed as readily as one on a quiet channel.")),
    "Wanda": (r"S_{ij} = |W_{ij}| \cdot \lVert X_j \rVert_2",
              ("Score each weight by its size times its input channel's norm over calibration tokens, then drop "
              "the lowest per row. It works because real LLMs have a few **outlier channels** with huge "
              "activations: their weights matter far more than magnitude says. **When it does not help:** the tiny "
              "GPT, trained small and from scratch, has no such outliers, so Wanda ≈ magnitude there.")),
    "SparseGPT": (r"\delta W = -\frac{w_q}{[H^{-1}]_{qq}}\,H^{-1}_{:,q}, \qquad H = 2XX^\top",
                  ("Prune column by column and **update the remaining weights** to cancel the error just made, "
                  "using the inverse Hessian of the layer's squared output error (second-order compensation, the "
                  "Optimal Brain Surgeon step). It beats magnitude and Wanda even without outliers (the tiny GPT).")),
    "RTN": (r"\widehat W = s\,\big(\operatorname{clamp}(\lfloor W/s \rceil + z,\,0,\,2^b-1) - z\big)",
            ("Round each weight to the nearest point of a grid with one scale s and zero point z per group. Needs no "
            "calibration, so it follows the bits slider live. SmolLM2's linears were already 4-bit (Q4_1) in the "
            "source file: at 8 bits RTN changes nothing there.")),
    "GPTQ": (r"\delta W_{:,q+1:} = -\frac{w_q - \widehat w_q}{[H^{-1}]_{qq}}\,H^{-1}_{q,q+1:}",
             ("Quantize one column at a time and push its rounding error onto the columns not yet quantized, "
             "weighted by the inverse Hessian: the same second-order compensation as SparseGPT. Columns go in "
             "order of decreasing Hessian diagonal (act-order), so the most-used inputs are rounded while the most "
             "freedom is left to absorb their error; each group's grid is fixed first, so the file layout is the "
             "same. Wins at 3–4 bits, with or without outliers.")),
    "AWQ": ((r"\widehat W = Q\big(W\,\mathrm{diag}(s)\big)\,\mathrm{diag}(s)^{-1}, \quad "
            r"s_j = \overline{|X_j|}^{\,\alpha}"),
            ("Scale up the weights of the channels with large activations before rounding, so their relative "
            "rounding error shrinks; α is searched per layer to minimise the output error. Helps where there are "
            "outlier channels (SmolLM2); on the tiny GPT it stays close to RTN.")),
    "SmoothQuant": ((r"s_j = \frac{\max|X_j|^{\alpha}}{\max|W_j|^{1-\alpha}}, \quad Y = (X\,\mathrm{diag}(s)^{-1})"
                    r"\,(\mathrm{diag}(s)\,W)"),
                    ("To quantize activations too (W·A·), move their outliers into the weights: divide channel j "
                     "of X "
                    "by s_j (folded into the preceding norm) and multiply the weights by it. α = 0 leaves the "
                    "activations alone; α = 1 moves everything. Without outliers there is little to smooth. Run **naive** "
                    "beside it: the same W·A bits without the migration.")),
}


def concept() -> None:
    with st.expander("Concept: what each method does, why it works, and when it does not help"):
        st.markdown("**Perplexity** = exp(mean negative log-likelihood of each next token) on held-out text: "
                    "lower is better; a model guessing uniformly over V tokens scores V. Each method compresses "
                    "one decoder layer at a time, fed by the already-compressed layers before it (calibration "
                    "text), and reports each linear's relative output error ‖WX − ŴX‖² / ‖WX‖².")
        for tab, (formula, text) in zip(st.tabs(list(CONCEPTS)), CONCEPTS.values()):
            tab.latex(formula)
            tab.markdown(text)


def run_details(rows: list[dict], dense_ppl: float | None, spec: str) -> None:
    """One run's per-layer errors, file sizes, time and notes; then every run's generation beside the dense one."""
    if not rows:
        return
    st.subheader("One run in detail")
    labels = {i: f"{r['label']} · calibrated on {r['calibration']}" for i, r in enumerate(rows)}
    pick = st.selectbox("Run", list(labels), index=len(rows) - 1, format_func=labels.get, key="lm_view_run")
    row = rows[pick]
    m = st.columns(4)
    delta = f"{row['perplexity'] - dense_ppl:+.2f} vs dense" if dense_ppl else None
    m[0].metric("Perplexity", f"{row['perplexity']:.2f}", delta, delta_color="inverse",
                help=f"on {row['tokens']:,} held-out tokens")
    m[1].metric("Packed file", f"{row['size_bytes'] / 2**20:.2f} MiB",
                f"{row['size_bytes'] / row['baseline_size_bytes']:.0%} of fp16", delta_color="off", delta_arrow="off")
    m[2].metric("Compression time", f"{row['seconds']:.1f} s", help="calibration forward passes included")
    if row["target_sparsity"] is not None:
        m[3].metric("Sparsity", f"{row['sparsity']:.1%}", help="zeros among the decoder layers' linear weights")
    else:
        m[3].metric("Weight bits", row["bits"], help=f"{row['sparsity']:.1%} of the weights rounded to exactly zero")
    left, right = st.columns(2)
    if row["layer_errors"]:
        left.plotly_chart(plots_lm.layer_error_heatmap(row["layer_errors"],
                                                       f"{row['label']}: relative output error per linear"),
                          key="lm_heatmap")
    sizes = [("fp16", row["baseline_size_bytes"])] + [(r["label"], r["size_bytes"]) for r in rows]
    right.plotly_chart(plots_lm.size_bars([s[0] for s in sizes], [s[1] for s in sizes],
                                          "Bytes of the packed file vs the fp16 file"), key="lm_sizes")
    right.caption("Packed files hold group-wise codes bit-packed at the chosen bits plus fp16 scales and zero "
                  "points (quantization), or a 1-bit mask plus the kept fp16 values (pruning; 2:4 keeps 2-bit "
                  "positions instead). Embeddings and norms stay fp16 in every file.")
    if row["packed"] is not None:
        download_button(right, f"Download the packed file ({len(row['packed']):,} bytes)", row["packed"],
                        f"{row['model']}-{row['label'].replace(' ', '-')}.safetensors", key="lm_packed_download")
    else:
        right.caption(f"The packed file ({row['size_bytes']:,} bytes) is measured, not kept: above 16 MiB a "
                      "session keeps numbers only.")
    for note in row["notes"]:
        st.caption(f"Note: {note}")
    generations(rows, spec)


def generations(rows: list[dict], spec: str) -> None:
    """The dense model's greedy continuation beside the last few runs' (same prompt, same length)."""
    last = next((r for r in reversed(rows) if r["generation"]), None)
    if last is None:
        return
    shown = [r for r in rows if r["generation"] and (r["prompt"], r["new_tokens"]) == (last["prompt"],
                                                                                        last["new_tokens"])][-3:]
    st.markdown(f"**Greedy continuations of** “{last['prompt']}”")
    cols = st.columns(len(shown) + 1)
    cols[0].markdown("*dense*")
    cols[0].text(dense_generation(spec, last["prompt"], last["new_tokens"]))
    for col, r in zip(cols[1:], shown):
        col.markdown(f"*{r['label']}*")
        col.text(r["generation"])


@st.cache_data(show_spinner=False, max_entries=64)
def _channel_max(spec: str, _calibration: TextSplit, key: str, layer: int, role: str) -> list[float]:
    lm = lm_model(spec)
    ids = calibration_ids(lm.tokenizer, _calibration.calibration, 4, 128)
    return channel_max(lm, ids, layer, role).tolist()


def outliers(lm: LanguageModel, spec: str, calibration: TextSplit) -> None:
    """Per-channel max|x| at one linear's input of the dense model: the outliers SmoothQuant and AWQ exist for."""
    st.subheader("Outlier channels")
    c = st.columns(2)
    layer = c[0].slider("Decoder layer", 0, lm.info.layers - 1, 0, key="lm_outlier_layer", bind="query-params")
    role = c[1].selectbox("Input of", layer_roles(lm.model), key="lm_outlier_role", bind="query-params")
    try:
        values = _channel_max(spec, calibration, text_key(calibration), layer, role)
    except InputError as exc:
        st.error(str(exc))
        return
    median = sorted(values)[len(values) // 2]
    st.plotly_chart(plots_lm.channel_max_chart(values, f"layer {layer}, input of {role}: max |x| per channel "
                                                       f"(4 × 128 tokens of {calibration.name})"), key="lm_outliers")
    # half the channels may stay at zero on a degenerate text: there is no ratio to give then
    ratio = f"{max(values) / median:.1f}× the median" if median > 0 else "above a median of 0"
    st.caption(f"Largest channel {ratio}. Real LLMs (SmolLM2) show a few channels far "
               "above the rest: rounding them with the others wastes the grid on them (SmoothQuant moves them into "
               "the weights, AWQ protects their weights). The tiny GPT has none, which is why Wanda ≈ magnitude and "
               "AWQ ≈ RTN on it.")


def source_note(info) -> None:
    """Say when the source file's linears were already low-bit (SmolLM2: Q4_1), which changes what RTN can do."""
    if info.source_quantization:
        st.info(f"The source file stored the linear layers as **{info.source_quantization}** (already "
                f"{bits_of(info.source_quantization)}); they were dequantized to float32 here, so 8-bit "
                "round-to-nearest changes almost nothing and lower bits start from weights already rounded once.")
    elif info.note:
        st.caption(info.note)


def bits_of(gguf_type: str) -> str:
    """"Q4_1" -> "4-bit": the width GGUF's type name leads with."""
    digits = "".join(ch for ch in gguf_type.split("_")[0] if ch.isdigit())
    return f"{digits}-bit" if digits else "low-bit"


def model_page() -> None:
    """The Model page for a language model: layers, parameters, held-out perplexity, a greedy continuation."""
    lm = current_lm()
    texts = [c for c in CORPORA if corpus_available(c)]
    if lm is None:
        return
    if not texts:
        st.error("No evaluation text installed (sudo apt-get install bible-kjv fortunes)")
        return
    spec, evaluation, info = lm_spec(st.session_state["model"]), builtin_text(texts[0]), lm.info
    ppl = dense_perplexity(spec, evaluation, text_key(evaluation), 16, 128)
    cols = st.columns(4)
    cols[0].metric("Decoder layers", info.layers)
    cols[1].metric("Parameters", f"{info.params:,}")
    cols[2].metric("Perplexity (held-out)", f"{ppl.perplexity:.2f}",
                   help=f"{evaluation.name}, last tenth: {ppl.tokens:,} predicted tokens")
    cols[3].metric("fp16 file", f"{fp16_size_bytes(lm) / 2**20:.1f} MiB")
    st.caption(f"{info.name} · {info.architecture} · hidden size {info.hidden_size} · {info.heads} heads "
               f"({info.kv_heads} key/value) · vocabulary {info.vocab_size:,} · perplexity on {ppl.tokens:,} tokens "
               f"of {evaluation.name} · source: {info.source}")
    source_note(info)
    prompt = st.text_input("Prompt", "In the beginning God created", key="lm_model_prompt", bind="query-params")
    if prompt.strip():
        try:
            st.text(prompt + dense_generation(spec, prompt, 40))
        except InputError as exc:
            st.error(str(exc))
        st.caption("Greedy decoding (always the same continuation), 40 new tokens.")
