"""`export`: write a model's weights as safetensors under its state-dict names (the names every --out uses)."""

from __future__ import annotations

from pathlib import Path

from compression.core.errors import InputError
from compression.metrics import safetensors_bytes, state_dict_of


def register(sub) -> None:
    from compression.cli import add_model_arguments

    parser = sub.add_parser("export", help="write the base weights as .safetensors")
    add_model_arguments(parser)
    parser.add_argument("--out", required=True, help="output file, ending in .safetensors")
    parser.add_argument("--json", action="store_true", help="print what was written as JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    from compression.cli import print_json, resolve_model

    model = resolve_model(args)
    if not args.out.endswith(".safetensors"):
        raise InputError("--out must end in .safetensors")
    state = model.onnx.all_initializers() if model.onnx is not None else state_dict_of(model.module)
    write_bytes_atomic(Path(args.out), safetensors_bytes(state))
    if args.json:
        print_json({"out": args.out, "size_bytes": Path(args.out).stat().st_size, "tensors": sorted(state)})
    return 0


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so an interrupted write never leaves a half file."""
    if path.parent and not path.parent.exists():
        raise InputError(f"folder {path.parent} does not exist")
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(data)
    tmp.replace(path)
