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
from compression.pipeline import (PRUNE_METHODS, QUANT_METHODS, WA_METHODS, compress_lm, fp16_size_bytes, lm_config,
                                  pack, packed_size_bytes)
from compression.quantization import ACT_GRANULARITIES, SmoothQuantConfig


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
    parser.add_argument("--json", action="store_true", help="print JSON")
    common.add_record_argument(parser)
    parser.set_defaults(func=run)


def build_config(args):
    if args.method in WA_METHODS:
        return SmoothQuantConfig(args.alpha, args.method == "smoothquant", args.weight_bits, args.act_bits,
                                 args.act_granularity)
    return lm_config(args.method, args.sparsity, common.parse_nm(args.nm) if args.nm else None, args.bits,
                     args.group_size, act_order=args.act_order, percdamp=args.percdamp, scope=args.scope)


def run(args) -> int:
    config = build_config(args)
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
        "size_bytes": packed_size_bytes(result), "baseline_size_bytes": fp16_size_bytes(lm),
        "evaluation_text": evaluation.name, "calibration_text": calibration.name, "seq_len": seq_len,
    }
    if args.prompt:
        payload["prompt"], payload["generation"] = args.prompt, generate(result.lm, args.prompt)
    if args.out:
        save_hf_folder(result.lm, Path(args.out))
        payload["out"] = args.out
    if args.packed_out:
        common.write_bytes_atomic(Path(args.packed_out), pack(result))
        payload["packed_out"] = args.packed_out
    payload["run_id"] = common.record(args, "lm", lm.info.name, payload, config.label)
    if args.json:
        common.print_json(payload)
        return 0
    print(f"{lm.info.name}: {config.label} in {result.seconds:.1f} s on {result.device}")
    print(f"  perplexity {measured.perplexity:.2f} (dense {baseline.perplexity:.2f}) on {measured.tokens} tokens")
    print(f"  packed file {payload['size_bytes']:,} bytes (float16 model {payload['baseline_size_bytes']:,} bytes)")
    for note in result.notes:
        print(f"  note: {note}")
    if args.prompt:
        print(f"  {args.prompt!r} -> {payload['generation']!r}")
    return 0
