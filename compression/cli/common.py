"""What every command shares: reading --model, recording runs, printing JSON, writing files atomically."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from compression.core import InputError, Waiting, files
from compression.formats import check_file_size
from compression.history import HistoryError, RunStore, run_from_result
from compression.models import (
    ZOO,
    LoadedModel,
    is_cached,
    load_custom,
    load_onnx_with_data,
    load_weights,
    load_zoo,
    train_zoo_model,
)


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
            shown, waited = 0, False
            for step in train_zoo_model(name):
                if isinstance(step, Waiting) and not waited:
                    print(f"  waiting for {step.what}…", file=sys.stderr)
                    waited = True
                elif step.test_accuracy is not None and step.fraction >= shown:
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
        return load_onnx_with_data(read_input(path), path.name, read_input(data_path), data_path.name)
    if path.suffix.lower() == ".clab":
        return load_weights(args.arch or "", read_input(path), path.name)
    if not args.arch:
        raise InputError(f"--model {path.name} needs --arch NAME: which zoo architecture these weights are for")
    return load_weights(args.arch, read_input(path), path.name)


def read_input(path: Path) -> bytes:
    """A model or data file's bytes, refused by size before it is read (the same cap as uploads)."""
    check_file_size(path.stat().st_size, path.name)
    return path.read_bytes()


def add_record_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-record", action="store_true", help="do not record this run in the run history")


def record(args: argparse.Namespace, kind: str, model: str, result: dict, label: str = "",
           file_name: str | None = None, file: bytes | None = None) -> str | None:
    """Record a finished run in the history; if the history is unusable, say so and keep the result."""
    return record_run(args, run_from_result(kind, model, result, label, file_name, file))


def record_run(args: argparse.Namespace, run) -> str | None:
    """Store a history.Run unless --no-record; a locked or read-only history only warns."""
    if getattr(args, "no_record", False):
        return None
    try:
        return RunStore().record(run)
    except HistoryError as exc:
        print(f"warning: the run was not recorded: {exc}", file=sys.stderr)
        return None


def print_json(payload: dict) -> None:
    print(json.dumps(payload, indent=2, sort_keys=True))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so an interrupted write never leaves a half file."""
    if path.parent and not path.parent.exists():
        raise InputError(f"folder {path.parent} does not exist")
    files.write_bytes_atomic(path, data)


def parse_nm(text: str) -> tuple[int, int]:
    """--nm N:M as two integers (the config checks their values)."""
    try:
        n, m = (int(p) for p in text.split(":"))
    except ValueError:
        raise InputError(f"--nm must look like 2:4, got {text!r}") from None
    return n, m
