"""Language-model views: the Concept panel, one run in detail (its errors beside another run's), the generations,
and the Model page's LM view."""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from compression.calibration import ERROR_TOKENS, subsample_size
from compression.core import InputError
from compression.lm import CORPORA, corpus_available
from compression.pipeline import fp16_size_bytes
from compression.plots import language_model as plots_lm
from ui.downloads import download_button
from ui.lm_choices import lm_spec
from ui.lm_models import builtin_text, current_lm, dense_generation, dense_perplexity, text_key

PICKED = "lm_view_picked"  # = ui.lm_sections.PICKED: the run the user chose to see in detail (None: the newest)

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


def run_key(row: dict, index: int) -> str:
    """A run's identity on the page: its id in the history, or its place in this session's list."""
    return row["run_id"] or f"session:{index}"


def _follow(choice_key: str, picked_key: str, options: list[str], default: str) -> None:
    """Show `default` in the widget `choice_key` unless the user picked an option that is still offered."""
    picked = st.session_state.get(picked_key)
    st.session_state[choice_key] = picked if picked in options else default


def run_details(rows: list[dict], dense_ppl: float | None, spec: str) -> None:
    """One run's per-layer errors (beside another run's, on one colour scale), file sizes, time and notes; then the
    generations of the last runs beside the dense model's. The detail follows the newest run unless the user picks
    one (a new batch lets go of the pick)."""
    if not rows:
        return
    st.subheader("One run in detail")
    by_key = {run_key(r, i): r for i, r in enumerate(rows)}
    keys = list(by_key)
    labels = {k: _run_label(r) for k, r in by_key.items()}
    _follow("lm_view_run", PICKED, keys, keys[-1])
    pick = st.selectbox("Run", keys, format_func=labels.get, key="lm_view_run",
                        on_change=lambda: st.session_state.update({PICKED: st.session_state["lm_view_run"]}),
                        help="The newest run, unless you pick another; a new Run follows its runs again.")
    row = by_key[pick]
    m = st.columns(4)
    delta = f"{row['perplexity'] - dense_ppl:+.2f} vs dense" if dense_ppl else None
    m[0].metric("Perplexity", f"{row['perplexity']:.2f}", delta, delta_color="inverse",
                help=f"on {row['tokens']:,} held-out tokens" if row.get("tokens") else None)
    if row.get("size_bytes") and row.get("baseline_size_bytes"):
        m[1].metric("Packed file", f"{row['size_bytes'] / 2**20:.2f} MiB",
                    f"{row['size_bytes'] / row['baseline_size_bytes']:.0%} of fp16", delta_color="off",
                    delta_arrow="off")
    if row.get("seconds") is not None:
        m[2].metric("Compression time", f"{row['seconds']:.1f} s", help="calibration forward passes included")
    zeros = f"{row['sparsity']:.1%}" if row.get("sparsity") is not None else "not recorded"
    if row["target_sparsity"] is not None:
        m[3].metric("Sparsity", zeros, help="zeros among the decoder layers' linear weights")
    elif row["method"] in ("smoothquant", "naive"):
        m[3].metric("Weights · activations", f"W{row['config']['weight_bits']}A{row['config']['act_bits']}",
                    help="the norm-fed linears' weights and their input activations")
    else:
        m[3].metric("Weight bits", row["bits"], help=f"weights rounded to exactly zero: {zeros}")
    error_maps(row, [r for k, r in by_key.items() if k != pick and r["layer_errors"]], labels, by_key)
    left, right = st.columns(2)
    last = [r for r in rows if r.get("size_bytes") and r.get("baseline_size_bytes")][-6:]
    names = [r["label"] if [x["label"] for x in last].count(r["label"]) == 1 else f"{r['label']} #{i + 1}"
             for i, r in enumerate(last)]  # a repeated run gets its place, or plotly would stack the two bars
    if last:  # a run from the command line may have recorded no sizes
        sizes = [("fp16", last[-1]["baseline_size_bytes"])] + [(n, r["size_bytes"]) for n, r in zip(names, last)]
        left.plotly_chart(plots_lm.size_bars([s[0] for s in sizes], [s[1] for s in sizes],
                                             "Bytes of the packed file vs the fp16 file (the last runs)"),
                          key="lm_sizes")
    right.caption("Packed files hold group-wise codes bit-packed at the chosen bits plus fp16 scales and zero "
                  "points (quantization), or a 1-bit mask plus the kept fp16 values (pruning; 2:4 keeps 2-bit "
                  "positions instead). Embeddings and norms stay fp16 in every file.")
    if row.get("packed") is not None:
        download_button(right, f"Download the packed file ({len(row['packed']):,} bytes)", row["packed"],
                        f"{row['model']}-{row['label'].replace(' ', '-')}.safetensors", key="lm_packed_download")
    elif row.get("size_bytes"):
        right.caption(f"The packed file ({row['size_bytes']:,} bytes) is measured, not kept: above 16 MiB a "
                      "session keeps numbers only, and the history keeps none.")
    for note in row["notes"]:
        st.caption(f"Note: {note}")
    generations(rows, spec)


def _run_label(row: dict) -> str:
    when = time.strftime(" · %d %b %H:%M", time.localtime(row["created_at"])) if row.get("created_at") else ""
    return f"{row['label']} · calibrated on {row['calibration'] or 'nothing'}{when}"


def _partner(row: dict, others: dict[str, dict]) -> str | None:
    """The run to set beside `row` by default: the newest of the plain method its family improves on (RTN for GPTQ
    and AWQ, magnitude for Wanda and SparseGPT, naive for SmoothQuant) at the same setting, if there is one."""
    config = row["config"]
    same = {"gptq": ("rtn", ("bits", "granularity", "group_size")), "awq": ("rtn", ("bits", "granularity",
                                                                                   "group_size")),
            "wanda": ("magnitude", ("amount", "nm")), "sparsegpt": ("magnitude", ("amount", "nm")),
            "smoothquant": ("naive", ("weight_bits", "act_bits", "act_granularity"))}.get(row["method"])
    if same is None:
        return None
    method, fields = same
    return next((k for k, r in reversed(others.items()) if r["method"] == method
                 and all(r["config"].get(f) == config.get(f) for f in fields)), None)


def error_maps(row: dict, others: list[dict], labels: dict[str, str], by_key: dict[str, dict]) -> None:
    """The run's per-layer relative errors; beside another run, both on one colour scale, or their ratio."""
    if not row["layer_errors"]:
        st.caption("This run recorded no per-layer errors.")
        return
    candidates = {k: r for k, r in by_key.items() if r in others}
    options = ["none", *candidates]
    _follow("lm_compare_run", "lm_compare_picked", options, _partner(row, candidates) or "none")
    pick, how = st.columns(2)
    other_key = pick.selectbox("Beside it", options, key="lm_compare_run",
                             format_func=lambda k: "no other run" if k == "none" else labels[k],
                             on_change=lambda: st.session_state.update(
                                 {"lm_compare_picked": st.session_state["lm_compare_run"]}),
                             help="Another run's per-layer errors on the same colour scale, or the ratio of the two.")
    tokens = _error_tokens(row)
    if other_key == "none":
        st.columns(2)[0].plotly_chart(plots_lm.layer_error_heatmap(
            row["layer_errors"], f"{row['label']}: relative output error", tokens=tokens), key="lm_heatmap")
        return
    other = candidates[other_key]
    view = how.radio("Show", ["side by side, one colour scale", "ratio"], horizontal=True, key="lm_heat_view",
                    bind="query-params")
    if view == "ratio":
        st.columns(2)[0].plotly_chart(plots_lm.layer_error_ratio(
            row["layer_errors"], other["layer_errors"], f"A = {row['label']} over B = {other['label']}", tokens),
            key="lm_heatmap_ratio")
        return
    scale = plots_lm.error_range(row["layer_errors"], other["layer_errors"])
    a, b = st.columns(2)
    a.plotly_chart(plots_lm.layer_error_heatmap(row["layer_errors"], row["label"], scale, tokens),
                   key="lm_heatmap")
    b.plotly_chart(plots_lm.layer_error_heatmap(other["layer_errors"], other["label"], scale, _error_tokens(other)),
                   key="lm_heatmap_other")
    st.caption("Both maps share one logarithmic colour scale: the same red means the same relative output error "
               "‖WX − ŴX‖² / ‖WX‖², measured on each layer's calibration inputs from the already-compressed layers "
               "before it.")


def _error_tokens(row: dict) -> int | None:
    """How many calibration tokens each layer's error was measured on (at most ERROR_TOKENS, evenly spaced)."""
    tokens = row.get("calibration_tokens")
    return subsample_size(int(tokens), ERROR_TOKENS) if tokens else None


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
    cols[0].text(dense_generation(spec, last["prompt"], int(last["new_tokens"] or 40)))  # the CLI's length
    for col, r in zip(cols[1:], shown):
        col.markdown(f"*{r['label']}*")
        col.text(r["generation"])


def source_note(info) -> None:
    """Say when the source file's linears were already low-bit (SmolLM2: Q4_1), which changes what RTN can do."""
    if info.source_quantization:
        st.info(f"The source file stored the linear layers as **{info.source_quantization}** (already "
                f"{bits_of(info.source_quantization)}); they were dequantized to float32 here, so 8-bit "
                "round-to-nearest changes almost nothing and lower bits start from weights already rounded once.")
    elif info.note:
        st.caption(info.note)


def shown_source(source: str) -> str:
    """Where a model came from, without the server's folders: a file or folder name, or what it is."""
    name = Path(source).name if ("/" in source or "\\" in source) else source
    return name or "this server"


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
               f"of {evaluation.name} · source: {shown_source(info.source)}")
    source_note(info)
    prompt = st.text_input("Prompt", "In the beginning God created", key="lm_model_prompt", bind="query-params")
    if prompt.strip():
        try:
            st.text(prompt + dense_generation(spec, prompt, 40))
        except InputError as exc:
            st.error(str(exc))
        st.caption("Greedy decoding (always the same continuation), 40 new tokens.")
