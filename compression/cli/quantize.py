"""`quantize`: round a model's weights (and optionally activations) to B bits, with optional QAT; measure it."""

from __future__ import annotations

import sys
from pathlib import Path

import compression.cli.common as common
from compression.core import Drive, InputError
from compression.metrics import safetensors_bytes, state_dict_of
from compression.calibration import calibration_images
from compression.quantization import (
    CALIBRATION_SAMPLES,
    GRANULARITIES,
    METHODS,
    RANGES,
    ActivationQuantConfig,
    QATConfig,
    QuantConfig,
    qat,
    quantize,
    quantize_activations,
)
from compression.training import TrainConfig


def register(sub) -> None:
    parser = sub.add_parser("quantize", help="quantize weights (PTQ or QAT) and measure accuracy and file size")
    common.add_model_arguments(parser)
    parser.add_argument("--bits", type=int, required=True, help="bits per weight, 1 to 16")
    parser.add_argument("--method", choices=METHODS, default="rtn",
                        help="rtn: round to nearest; gptq and awq calibrate layer by layer on training images")
    parser.add_argument("--granularity", choices=GRANULARITIES, default="per-channel")
    parser.add_argument("--group-size", type=int, default=64, help="per-group: inputs per group (default 64)")
    parser.add_argument("--calibration-samples", type=int, default=CALIBRATION_SAMPLES,
                        help=f"gptq/awq: training images to calibrate on (default {CALIBRATION_SAMPLES})")
    parser.add_argument("--asymmetric", action="store_true", help="asymmetric grid with a zero point")
    parser.add_argument("--range", dest="range_method", choices=RANGES, default="min-max",
                        help="how the grid's range is chosen")
    parser.add_argument("--binary", action="store_true", help="at 1 bit: sign(w) x mean|w|")
    parser.add_argument("--ternary", action="store_true", help="at 2 bits: {-a, 0, +a}")
    parser.add_argument("--activations", action="store_true",
                        help="also quantize layer inputs (static PTQ, calibrated on training batches)")
    parser.add_argument("--activation-bits", type=int, default=8)
    parser.add_argument("--qat-epochs", type=int, default=0, help="quantization-aware training epochs (0 = PTQ)")
    parser.add_argument("--out", help="write the dequantized weights as .safetensors (same names as `export`)")
    parser.add_argument("--packed-out", help="write the packed low-bit file whose bytes are size_bytes")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    common.add_record_argument(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    config = QuantConfig(bits=args.bits, scheme="asymmetric" if args.asymmetric else "symmetric",
                         granularity=args.granularity, group_size=args.group_size, range_method=args.range_method,
                         binary=args.binary, ternary=args.ternary, method=args.method)
    if args.qat_epochs < 0:
        raise InputError(f"--qat-epochs must be >= 0, got {args.qat_epochs}")
    for path, suffix in ((args.out, ".safetensors"), (args.packed_out, "")):
        if path and not path.endswith(suffix):
            raise InputError(f"--out must end in {suffix}")
        if path and not Path(path).resolve().parent.is_dir():
            raise InputError(f"folder {Path(path).parent} does not exist")
    if args.qat_epochs and config.method != "rtn":
        raise InputError("QAT trains toward round-to-nearest grids: use --method rtn with --qat-epochs")
    model = common.resolve_model(args)
    payload = {}
    calibration = None
    if config.needs_calibration:
        if model.module is None:
            raise InputError(f"{args.method.upper()} needs a PyTorch model: an ONNX graph is quantized by "
                             "round-to-nearest here")
        calibration = calibration_images(model.dataset, args.calibration_samples)
        payload["calibration_samples"] = len(calibration)
    if args.qat_epochs:
        qat_result = _run_qat(model, config, args.qat_epochs)
        result = qat_result.quantized
        payload.update(qat_epochs=args.qat_epochs, ptq_accuracy=qat_result.ptq_accuracy)
    else:
        result = quantize(model, config, calibration=calibration)
    accuracy = result.accuracy
    if args.activations:
        act = quantize_activations(result.source, ActivationQuantConfig(config, activation_bits=args.activation_bits))
        accuracy = act.accuracy
        payload.update(activation_bits=args.activation_bits, weight_only_accuracy=act.weight_only_accuracy)
    baseline = model.evaluate().accuracy
    if args.out:
        common.write_bytes_atomic(Path(args.out), safetensors_bytes(_dequantized_state(result)))
        payload["out"] = args.out
    if args.packed_out:
        common.write_bytes_atomic(Path(args.packed_out), result.packed)
        payload["packed_out"] = args.packed_out
    payload.update(accuracy=accuracy, baseline_accuracy=baseline, bits=args.bits, size_bytes=result.size_bytes,
                   baseline_size_bytes=result.baseline_size_bytes, config=config.to_dict(),
                   layers=result.to_dict()["layers"], notes=result.to_dict()["notes"])
    how = "QAT" if args.qat_epochs else {"rtn": "PTQ"}.get(config.method, config.method.upper())
    grid = f"g{config.group_size}" if config.granularity == "per-group" else config.granularity
    label = f"{how} {args.bits}-bit {config.scheme} {grid}"
    payload["run_id"] = common.record(args, "quantize", model.name, payload, label)
    if args.json:
        common.print_json(payload)
        return 0
    print(f"{model.name}: {config.method} {args.bits}-bit {config.scheme} {config.granularity} ({config.range_method})"
          f"{' + QAT' if args.qat_epochs else ''}{' + activations' if args.activations else ''}")
    print(f"  accuracy {accuracy:.4f}  (fp32 {baseline:.4f})")
    print(f"  packed file {result.size_bytes} bytes  (fp32 torch.save {result.baseline_size_bytes} bytes, "
          f"{result.baseline_size_bytes / result.size_bytes:.1f}x smaller)")
    for layer in result.layers:
        print(f"    {layer.layer:<24} {layer.bits:>2} bits  SQNR {layer.sqnr_db:6.1f} dB  "
              f"clipped {layer.clipped_fraction:.2%}")
    return 0


def _run_qat(model, config: QuantConfig, epochs: int):
    run = Drive(qat(model, QATConfig(config, TrainConfig(epochs=epochs, lr=1e-3))))
    for step in run:
        if step.test_accuracy is not None:
            print(f"  QAT epoch {step.epoch:.0f}/{epochs}  test accuracy {step.test_accuracy:.3f}", file=sys.stderr)
    return run.result


def _dequantized_state(result) -> dict:
    """The full state dict (export's names) with the quantized weights in place."""
    source = result.source
    state = source.onnx.all_initializers() if source.onnx is not None else state_dict_of(source.module)
    return {name: result.weights.get(name, tensor) for name, tensor in state.items()}
