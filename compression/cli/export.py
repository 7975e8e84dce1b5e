"""`export`: write a model's weights as safetensors under its state-dict names (the names every --out uses)."""

from __future__ import annotations

from pathlib import Path

import compression.cli.common as common
from compression.core import InputError
from compression.metrics import safetensors_bytes, state_dict_of


def register(sub) -> None:
    parser = sub.add_parser("export", help="write the base weights as .safetensors")
    common.add_model_arguments(parser)
    parser.add_argument("--out", required=True, help="output file, ending in .safetensors")
    parser.add_argument("--json", action="store_true", help="print what was written as JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    model = common.resolve_model(args)
    if not args.out.endswith(".safetensors"):
        raise InputError("--out must end in .safetensors")
    state = model.onnx.all_initializers() if model.onnx is not None else state_dict_of(model.module)
    common.write_bytes_atomic(Path(args.out), safetensors_bytes(state))
    if args.json:
        common.print_json({"out": args.out, "size_bytes": Path(args.out).stat().st_size, "tensors": sorted(state)})
    return 0

