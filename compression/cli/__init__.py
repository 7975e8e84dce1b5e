"""The command-line interface, `python -m compression COMMAND`: one module per command, same engine as the app."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from compression.core.errors import InputError
from compression.models.loading import LoadedModel, load_custom, load_onnx_with_data, load_weights, load_zoo
from compression.models.zoo import ZOO, is_cached, train_zoo_model
from compression.cli import distill, export, info, lm, pipeline, prune, quantize, runs

# Each module exposes register(subparsers) and sets `func` on its parser.
COMMANDS = [info, export, distill, quantize, prune, pipeline, lm, runs]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compression",
                                     description="Compression Lab: prune, quantize and distill PyTorch models.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line for the user instead of a traceback
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model and the options that say how to read a user's file."""
    parser.add_argument("--model", required=False, default=None,
                        help=f"zoo name ({', '.join(ZOO)}), or a .onnx / .safetensors / .pt file")
    parser.add_argument("--arch", help="zoo architecture of a .safetensors/.pt file given as --model")
    parser.add_argument("--data", help="evaluation data (.npz with x and y) for an .onnx model or --arch-factory; "
                                       "or a built-in dataset name for --arch-factory")
    parser.add_argument("--arch-factory", metavar="MODULE:FUNCTION",
                        help="your own architecture: a function on the import path returning an nn.Module")
    parser.add_argument("--weights", help="weights for --arch-factory (.safetensors or .pt state dict)")


def resolve_model(args: argparse.Namespace) -> LoadedModel:
    """Turn the model arguments into a LoadedModel, training a zoo model first if needed."""
    if args.arch_factory:
        if not args.data:
            raise InputError("--arch-factory needs --data (a .npz with x and y, or a built-in dataset name)")
        return load_custom(args.arch_factory, args.weights, args.data)
    if not args.model:
        raise InputError("--model is required (a zoo name or a model file)")
    name = args.model
    if name in ZOO:
        if not is_cached(name):
            print(f"training {name} on first use…", file=sys.stderr)
            shown = 0
            for step in train_zoo_model(name):
                if step.test_accuracy is not None and step.fraction >= shown:
                    print(f"  {step.fraction:4.0%}  test accuracy {step.test_accuracy:.3f}", file=sys.stderr)
                    shown += 0.25
        return load_zoo(name)
    path = Path(name)
    if not path.is_file():
        raise InputError(f"--model {name!r} is neither a zoo model ({', '.join(ZOO)}) nor an existing file")
    if path.suffix.lower() == ".onnx":
        if not args.data:
            raise InputError("an .onnx model needs --data FILE.npz (arrays x and y) to be evaluated")
        data_path = Path(args.data)
        if not data_path.is_file():
            raise InputError(f"data file {args.data} does not exist")
        return load_onnx_with_data(path.read_bytes(), path.name, data_path.read_bytes(), data_path.name)
    if path.suffix.lower() == ".clab":
        return load_weights(args.arch or "", path.read_bytes(), path.name)
    if not args.arch:
        raise InputError(f"--model {path.name} needs --arch NAME: which zoo architecture these weights are for")
    return load_weights(args.arch, path.read_bytes(), path.name)


def add_record_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-record", action="store_true", help="do not record this run in the run history")


def record(args: argparse.Namespace, kind: str, model: str, result: dict, label: str = "",
           file_name: str | None = None, file: bytes | None = None) -> str | None:
    """Record a finished run in the history; if the history is unusable, say so and keep the result."""
    from compression.history.store import run_from_result

    return record_run(args, run_from_result(kind, model, result, label, file_name, file))


def record_run(args: argparse.Namespace, run) -> str | None:
    """Store a history.Run unless --no-record; a locked or read-only history only warns."""
    from compression.history.store import HistoryError, RunStore

    if getattr(args, "no_record", False):
        return None
    try:
        return RunStore().record(run)
    except HistoryError as exc:
        print(f"warning: the run was not recorded: {exc}", file=sys.stderr)
        return None


def print_json(payload: dict) -> None:
    print(json.dumps(payload, indent=2, sort_keys=True))
