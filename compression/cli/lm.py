"""`lm`: compress a language model (tiny-gpt, smollm2, a HF folder or .gguf) and measure its perplexity."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import compression.cli.common as common
from compression.core import Drive
from compression.lm import (
    calibration_ids,
    evaluation_ids,
    generate,
    load_language_model,
    load_text,
    max_positions,
    perplexity,
    save_hf_folder,
)
from compression.core.hardware import measure_bandwidth
from compression.pipeline import (HEADS, PRUNE_METHODS, QUANT_METHODS, WA_METHODS, CostConfig, compress_lm,
                                  export_gguf, fp16_size_bytes, lm_config, pack, packed_size_bytes, run_cost)
from compression.quantization import ACT_GRANULARITIES, KERNELS, SCHEMES, SmoothQuantConfig


def register(sub) -> None:
    parser = sub.add_parser("lm", help="compress a language model and measure its perplexity")
    parser.add_argument("--model", default="tiny-gpt", help="tiny-gpt, smollm2, a Hugging Face folder or a .gguf file")
    parser.add_argument("--method", required=True, choices=PRUNE_METHODS + QUANT_METHODS + WA_METHODS)
    parser.add_argument("--sparsity", type=float, default=0.5, help="pruning: fraction of weights removed")
    parser.add_argument("--nm", metavar="N:M", help="pruning: keep N of every M inputs, e.g. 2:4")
    parser.add_argument("--scope", choices=("row", "layer"), default="row",
                        help="magnitude: rank within each output row, or over each whole layer")
    parser.add_argument("--bits", type=int, default=4, help="rtn/gptq/awq: weight bits")
    parser.add_argument("--group-size", type=int, default=64, help="rtn/gptq/awq: input columns per group (0: per row)")
    parser.add_argument("--scheme", choices=SCHEMES, default="asymmetric",
                        help="rtn/gptq/awq: grid with a zero point (asymmetric) or around zero (symmetric: the grids "
                             "GGUF's Q4_0 and Q8_0 hold)")
    parser.add_argument("--act-order", action=argparse.BooleanOptionalAction, default=True,
                        help="gptq: columns by decreasing diag H (default on)")
    parser.add_argument("--percdamp", type=float, default=0.01, help="sparsegpt/gptq: dampening (of mean diag H)")
    parser.add_argument("--alpha", type=float, default=0.5, help="smoothquant: migration strength")
    parser.add_argument("--weight-bits", type=int, default=8, help="smoothquant/naive: weight bits")
    parser.add_argument("--act-bits", type=int, default=8, help="smoothquant/naive: activation bits")
    parser.add_argument("--act-granularity", choices=ACT_GRANULARITIES, default="per-token")
    parser.add_argument("--text", default="kjv", help="evaluation text: kjv, fortunes or a .txt (its last tenth)")
    parser.add_argument("--calibration-text", help="calibration text (default: --text; its first nine tenths)")
    parser.add_argument("--samples", type=int, default=16, help="calibration windows")
    parser.add_argument("--eval-samples", type=int, default=16, help="evaluation windows")
    parser.add_argument("--seq-len", type=int, default=256, help="tokens per window (at most the model's context)")
    parser.add_argument("--seed", type=int, default=0, help="where the calibration windows are cut")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--prompt", help="also print the compressed model's greedy continuation of this prompt")
    parser.add_argument("--out", help="write the compressed model as a Hugging Face folder")
    parser.add_argument("--packed-out", help="write the packed file whose size is reported")
    parser.add_argument("--gguf-out", help="write a llama.cpp GGUF: quantized linears as Q4_0/Q8_0 blocks where the "
                                           "grid matches exactly, other tensors float (Llama-family models)")
    parser.add_argument("--measure-speed", action="store_true",
                        help="also measure what the run buys: batch-1 decode and prefill tokens/s and peak memory of "
                             "the model on real low-bit kernels (in a child process) beside the dense float32 model, "
                             "bytes read per token, this machine's bandwidth and the estimates it gives")
    parser.add_argument("--speed-prompt-tokens", type=int, default=256, help="--measure-speed: prompt tokens")
    parser.add_argument("--speed-new-tokens", type=int, default=32, help="--measure-speed: tokens decoded per repeat")
    parser.add_argument("--speed-repeats", type=int, default=5, help="--measure-speed: repeats (median reported)")
    parser.add_argument("--kernel", choices=("auto", *KERNELS), default="auto",
                        help="--measure-speed: the low-bit kernel (auto: int4pack where the grid maps, else int8pack)")
    parser.add_argument("--head", choices=HEADS, default="float",
                        help="--measure-speed: the output head as the run left it, or rounded to int8 for the int8 "
                             "kernel (measured apart: the run did not round it)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    common.add_record_argument(parser)
    parser.set_defaults(func=run)


def build_config(args):
    if args.method in WA_METHODS:
        return SmoothQuantConfig(args.alpha, args.method == "smoothquant", args.weight_bits, args.act_bits,
                                 args.act_granularity)
    return lm_config(args.method, args.sparsity, common.parse_nm(args.nm) if args.nm else None, args.bits,
                     args.group_size, act_order=args.act_order, percdamp=args.percdamp, scope=args.scope,
                     scheme=args.scheme)


def run(args) -> int:
    config = build_config(args)
    cost_config = CostConfig(args.speed_prompt_tokens, args.speed_new_tokens, args.speed_repeats, args.threads) \
        if args.measure_speed else None
    evaluation = load_text(args.text)  # texts first: refusing a bad one costs no model load
    calibration = load_text(args.calibration_text) if args.calibration_text else evaluation
    lm = load_language_model(args.model)
    seq_len = min(args.seq_len, max_positions(lm))
    eval_ids = evaluation_ids(lm.tokenizer, evaluation.evaluation, args.eval_samples, seq_len)
    calib_ids = calibration_ids(lm.tokenizer, calibration.calibration, args.samples, seq_len, args.seed)
    baseline = perplexity(lm.model.to(args.device), eval_ids)
    run_ = Drive(compress_lm(lm, config, calib_ids if config.needs_calibration else None, args.device))
    for step in run_:
        if not args.json:
            print(f"  layer {step.index + 1}/{step.blocks}  {step.seconds:6.1f} s", file=sys.stderr)
    result = run_.result
    measured = perplexity(result.lm.model, eval_ids)
    payload = {
        "model": lm.info.name, "model_info": lm.info.to_dict(), **result.to_dict(),
        "perplexity": measured.perplexity, "baseline_perplexity": baseline.perplexity, "tokens": measured.tokens,
        "top1_accuracy": measured.top1, "baseline_top1_accuracy": baseline.top1,
        "size_bytes": packed_size_bytes(result), "baseline_size_bytes": fp16_size_bytes(lm),
        "evaluation_text": evaluation.name, "calibration_text": calibration.name, "seq_len": seq_len,
        # what the page records of its own runs, so a run prepared here shows its 95% range there too
        "measured_on": {**measured.noise(), "calibration_tokens": args.samples * seq_len,
                        "eval_samples": args.eval_samples},
    }
    if cost_config is not None:
        if not args.json:
            print("  measuring speed and memory…", file=sys.stderr)
        payload.update(run_cost(lm, result, eval_ids, cost_config, bandwidth=measure_bandwidth(), head=args.head,
                                kernel=args.kernel).to_dict())
    if args.prompt:
        payload["prompt"], payload["generation"] = args.prompt, generate(result.lm, args.prompt)
    if args.out:
        save_hf_folder(result.lm, Path(args.out))
        payload["out"] = args.out
    if args.packed_out:
        common.write_bytes_atomic(Path(args.packed_out), pack(result))
        payload["packed_out"] = args.packed_out
    if args.gguf_out:
        payload["gguf"] = export_gguf(result.lm, result.run.qtensors, Path(args.gguf_out)).to_dict()
    payload["run_id"] = common.record(args, "lm", lm.info.name, payload, config.label)
    if args.json:
        common.print_json(payload)
        return 0
    print(f"{lm.info.name}: {config.label} in {result.seconds:.1f} s on {result.device}")
    print(f"  perplexity {measured.perplexity:.2f} (dense {baseline.perplexity:.2f}) on {measured.tokens} tokens; "
          f"next-token top-1 accuracy {measured.top1:.1%} (dense {baseline.top1:.1%})")
    print(f"  packed file {payload['size_bytes']:,} bytes (float16 model {payload['baseline_size_bytes']:,} bytes)")
    if cost_config is not None:
        print_cost(payload)
    for note in [*result.notes, *(payload.get("cost") or {}).get("notes", [])]:
        print(f"  note: {note}")
    if args.prompt:
        print(f"  {args.prompt!r} -> {payload['generation']!r}")
    return 0


def print_cost(payload: dict) -> None:
    """The measured cost and the labelled estimates, in words."""
    mib = 2 ** 20
    print(f"  {payload['kernel']}: decode {payload['decode_tokens_per_s']:.1f} tokens/s "
          f"({payload['decode_tokens_per_s_min']:.1f}–{payload['decode_tokens_per_s_max']:.1f}) vs dense float32 "
          f"{payload['dense_decode_tokens_per_s']:.1f}: {payload['decode_speedup']:.2f}×; prefill "
          f"{payload['prefill_tokens_per_s']:.0f} tokens/s ({payload['prefill_speedup']:.2f}×), batch 1, "
          f"{payload['threads']} thread(s)")
    if payload.get("peak_memory_bytes"):
        print(f"  peak memory {payload['peak_memory_bytes'] / mib:,.0f} MiB (dense "
              f"{payload['dense_peak_memory_bytes'] / mib:,.0f} MiB), measured in a child process")
    print(f"  reads {payload['weight_bytes_per_token'] / mib:,.1f} MiB of weights per token (computed)")
    if payload.get("real_perplexity") is not None:
        print(f"  real kernels: perplexity {payload['real_perplexity']:.2f} (×{payload['real_perplexity_ratio']:.4f} "
              f"of the float model's), top-1 agreement {payload['top1_agreement']:.1%}, max |Δlogit| "
              f"{payload['max_abs_logit_diff']:.3g}")
    if payload.get("predicted_decode_tokens_per_s"):
        print(f"  estimate: {payload['predicted_decode_tokens_per_s']:.1f} tokens/s = copy bandwidth "
              f"{payload['bandwidth_gb_s']:.1f} GB/s ÷ bytes per token (an upper bound)")
    if payload.get("predicted_decode_tokens_per_s_here"):
        print(f"  estimate here: {payload['predicted_decode_tokens_per_s_here']:.1f} tokens/s = the weights at that "
              f"bandwidth + {payload['decode_other_ms']:.1f} ms a token measured outside the weight layers "
              f"({payload['decode_weight_layers_ms']:.1f} ms inside them)")
    for device in payload["cost"]["devices"]:
        print(f"  estimate on {device['device']}: {'fits' if device['fits'] else 'does not fit'} "
              f"({device['needed_bytes'] / mib:,.0f} MiB), ~{device['tokens_per_s']:,.0f} tokens/s")
