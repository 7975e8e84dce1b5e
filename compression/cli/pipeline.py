"""`pipeline`: prune, distill, quantize and encode in order; writes a .clab file and records the run."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

import compression.cli.common as common
from compression.core import Drive, InputError
from compression.pipeline import PipelineConfig, run_pipeline


def register(sub) -> None:
    parser = sub.add_parser("pipeline", help="compose prune, distill, quantize and encode; write a .clab file")
    common.add_model_arguments(parser)
    defaults = PipelineConfig()
    parser.add_argument("--steps", default=",".join(defaults.steps), help="comma-separated, in the order "
                        "prune,distill,quantize,encode (default: %(default)s)")
    parser.add_argument("--sparsity", type=float, default=defaults.sparsity, help="prune: global sparsity")
    parser.add_argument("--finetune-epochs", type=int, default=defaults.finetune_epochs)
    parser.add_argument("--lr", type=float, default=defaults.finetune_lr, help="fine-tuning learning rate")
    parser.add_argument("--student-hidden", default="32", help="distill: hidden sizes, e.g. 64,32")
    parser.add_argument("--alpha", type=float, default=defaults.alpha)
    parser.add_argument("--temperature", type=float, default=defaults.temperature)
    parser.add_argument("--distill-epochs", type=int, default=defaults.distill_epochs)
    parser.add_argument("--bits", type=int, default=defaults.codebook_bits, help="quantize (weight sharing): 2**BITS shared values per layer")
    parser.add_argument("--quant-epochs", type=int, default=defaults.quant_epochs)
    parser.add_argument("--index-bits", type=int, default=defaults.index_bits, help="encode: relative index width")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--out", help="where to write the .clab file (needs the encode step)")
    common.add_record_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    # Small models train fastest on one thread; a second OpenMP thread spins against other work on 2 cores.
    torch.set_num_threads(1)

    try:
        hidden = tuple(int(h) for h in args.student_hidden.split(",") if h.strip())
    except ValueError as exc:
        raise InputError(f"--student-hidden must be sizes like 64,32, got {args.student_hidden!r}") from exc
    config = PipelineConfig(
        steps=args.steps, sparsity=args.sparsity, finetune_epochs=args.finetune_epochs, finetune_lr=args.lr,
        student_hidden=hidden, alpha=args.alpha, temperature=args.temperature, distill_epochs=args.distill_epochs,
        codebook_bits=args.bits, quant_epochs=args.quant_epochs, index_bits=args.index_bits, seed=args.seed)
    if args.out and "encode" not in config.steps:
        raise InputError("--out writes the .clab file: add the encode step")
    out = Path(args.out) if args.out else None
    if out is not None and not out.parent.exists():
        raise InputError(f"folder {out.parent} does not exist")
    model = common.resolve_model(args)
    run_steps = Drive(run_pipeline(model, config))
    shown = None
    for progress in run_steps:
        if progress.stage != shown:
            print(f"  {progress.stage}…", file=sys.stderr)
            shown = progress.stage
    result = run_steps.result
    if out is not None:
        common.write_bytes_atomic(out, result.file)
    payload = result.to_dict()
    recorded = {**result.to_dict(), "curves": dict(result.curves)}
    payload["run_id"] = common.record(args, "pipeline", model.name, recorded, "+".join(config.steps),
                               out.name if out else "model.clab", result.file)
    if args.json:
        common.print_json(payload)
    else:
        for stage in result.stages:
            print(f"{stage.name:<9} accuracy {stage.accuracy:.4f}  size {stage.size_bytes} bytes")
        print(f"{result.compression_ratio:.1f}x smaller, accuracy {result.baseline_accuracy:.4f} -> {result.accuracy:.4f}")
    return 0
