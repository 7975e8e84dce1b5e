"""`prune`: magnitude (sparsity or threshold), Wanda, SparseGPT, N:M or structured pruning, optionally fine-tuned;
measured."""

from __future__ import annotations

import sys
from pathlib import Path

import compression.cli.common as common
from compression.core import Drive, InputError
from compression.metrics import safetensors_bytes
from compression.calibration import calibration_images
from compression.pruning import (CALIBRATION_SAMPLES, METHODS, SCOPES, FinetuneConfig, PruneConfig, finetune,
                                 model_state, prune)
from compression.training import TrainConfig


def register(sub) -> None:
    parser = sub.add_parser("prune", help="prune a model and measure it")
    common.add_model_arguments(parser)
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--sparsity", type=float, help="fraction of weights (structured: of units) to remove, 0..1")
    amount.add_argument("--threshold", type=float, help="keep weights with |w| > THRESHOLD (magnitude only)")
    parser.add_argument("--scope", choices=SCOPES, default="global",
                        help="magnitude: one ranking over all layers, the same sparsity in each layer, or in each row")
    parser.add_argument("--method", choices=METHODS + ("nm",), default="magnitude",
                        help="wanda and sparsegpt calibrate layer by layer on training images; nm = magnitude --nm")
    parser.add_argument("--nm", metavar="N:M", help="keep N of every M consecutive inputs, e.g. 2:4 (any method "
                                                     "but structured; --method nm defaults to 2:4)")
    parser.add_argument("--calibration-samples", type=int, default=CALIBRATION_SAMPLES,
                        help=f"wanda/sparsegpt: training images to calibrate on (default {CALIBRATION_SAMPLES})")
    parser.add_argument("--norm", type=int, choices=(1, 2), default=1, help="structured: rank units by L1 or L2")
    parser.add_argument("--exclude", action="append", default=[], metavar="LAYER",
                        help="leave this layer dense (repeatable), e.g. --exclude fc1")
    parser.add_argument("--finetune-epochs", type=int, default=0, help="masked fine-tuning epochs after pruning")
    parser.add_argument("--out", help="write the pruned weights as .safetensors (the names `export` uses)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    common.add_record_argument(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    if args.out and not args.out.endswith(".safetensors"):
        raise InputError("--out must end in .safetensors")
    method, pattern = ("magnitude", args.nm or "2:4") if args.method == "nm" else (args.method, args.nm)
    if pattern is None and args.sparsity is None and args.threshold is None:
        raise InputError("give --sparsity S, --threshold T or --nm N:M")
    config = PruneConfig(amount=None if pattern else args.sparsity, threshold=args.threshold, method=method,
                         scope=args.scope, nm=common.parse_nm(pattern) if pattern else None,
                         exclude=tuple(args.exclude), norm=args.norm)
    model = common.resolve_model(args)
    calibration = None
    if config.needs_calibration:
        if model.module is None:
            raise InputError(f"{method} needs a PyTorch model: an ONNX graph can be pruned by magnitude here")
        calibration = calibration_images(model.dataset, args.calibration_samples)
    result = prune(model, config, calibration)
    payload = result.to_dict()
    if calibration is not None:
        payload["calibration_samples"] = len(calibration)
    if args.finetune_epochs:
        run_ = Drive(finetune(model, FinetuneConfig(config, TrainConfig(epochs=args.finetune_epochs, lr=1e-3)),
                             calibration))
        for step in run_:
            if step.test_accuracy is not None and not args.json:
                print(f"  epoch {step.epoch:5.1f}  test accuracy {step.test_accuracy:.4f}", file=sys.stderr)
        tuned = run_.result
        state = model_state(tuned.model)
        payload.update(oneshot_accuracy=result.accuracy, accuracy=tuned.accuracy, finetune_epochs=args.finetune_epochs,
                       nonzero_params=tuned.nonzero_params, params=tuned.params)
        final_model = tuned.model
    else:
        state = model_state(result.model)
        final_model = result.model
    if args.out:
        common.write_bytes_atomic(Path(args.out), safetensors_bytes(state))
        payload["out"] = args.out
    payload["model"] = final_model.name
    pattern_label = f" {config.nm[0]}:{config.nm[1]}" if config.nm else ""
    label = f"{config.method}{pattern_label} {payload['sparsity']:.0%}" + \
        (f" +ft{args.finetune_epochs}" if args.finetune_epochs else "")
    payload["run_id"] = common.record(args, "prune", model.name, payload, label)
    if args.json:
        common.print_json(payload)
        return 0
    print(f"{final_model.name}: {config.method} pruning, sparsity {payload['sparsity']:.3f}")
    print(f"  accuracy {payload['accuracy']:.4f} (dense {payload['baseline_accuracy']:.4f})")
    print(f"  params {payload['params']}  non-zero {payload['nonzero_params']}")
    print(f"  size {payload['size_bytes']} bytes dense file, {payload['sparse_size_bytes']} bytes sparse encoding "
          f"(dense model {payload['baseline_size_bytes']} bytes)")
    if args.out:
        print(f"  wrote {args.out}")
    return 0
