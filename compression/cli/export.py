"""`export`: write a model's weights as safetensors under its state-dict names (the names every --out uses); or a
compressed language model (its packed file on its base model) as files other programs load: a llama.cpp GGUF with
Q4_0/Q8_0 blocks where the grids match, and a Hugging Face folder transformers loads."""

from __future__ import annotations

from pathlib import Path

import compression.cli.common as common
from compression.core import InputError
from compression.lm import load_language_model
from compression.metrics import safetensors_bytes, state_dict_of
from compression.pipeline import export_gguf, export_hf_folder, from_packed


def register(sub) -> None:
    parser = sub.add_parser("export", help="write the base weights as .safetensors, or a compressed language model "
                                           "as GGUF and a Hugging Face folder")
    common.add_model_arguments(parser)
    parser.add_argument("--out", help="output file, ending in .safetensors (classifiers)")
    parser.add_argument("--lm", help="language model: tiny-gpt, smollm2, a Hugging Face folder or a .gguf file, with "
                                     "--packed (the file `lm --packed-out` wrote for it)")
    parser.add_argument("--packed", help="--lm: the compressed model's packed file")
    parser.add_argument("--gguf-out", help="--lm: write a llama.cpp GGUF (Llama-family models)")
    parser.add_argument("--gguf-float", choices=("F16", "F32"), default="F16",
                        help="--lm: how the GGUF stores float tensors that are not norms (default F16)")
    parser.add_argument("--hf-out", help="--lm: write a Hugging Face folder (safetensors) transformers loads")
    parser.add_argument("--json", action="store_true", help="print what was written as JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    if args.lm:
        return run_lm(args)
    if not args.out:
        raise InputError("--out is required (or --lm with --packed for a language model)")
    model = common.resolve_model(args)
    if not args.out.endswith(".safetensors"):
        raise InputError("--out must end in .safetensors")
    state = model.onnx.all_initializers() if model.onnx is not None else state_dict_of(model.module)
    common.write_bytes_atomic(Path(args.out), safetensors_bytes(state))
    if args.json:
        common.print_json({"out": args.out, "size_bytes": Path(args.out).stat().st_size, "tensors": sorted(state)})
    return 0



def run_lm(args) -> int:
    """A compressed language model's packed file, written as GGUF and/or a Hugging Face folder."""
    if not args.packed:
        raise InputError("--lm needs --packed FILE (written by `python -m compression lm ... --packed-out FILE`)")
    if not (args.gguf_out or args.hf_out):
        raise InputError("--lm needs --gguf-out FILE.gguf and/or --hf-out FOLDER")
    lm, qtensors = from_packed(load_language_model(args.lm), common.read_input(Path(args.packed)))
    written = {}
    if args.gguf_out:
        written["gguf"] = export_gguf(lm, qtensors, Path(args.gguf_out), args.gguf_float).to_dict()
    if args.hf_out:
        written["hf_folder"] = export_hf_folder(lm, Path(args.hf_out)).to_dict()
    if args.json:
        common.print_json(written)
        return 0
    for kind, info in written.items():
        print(f"{kind}: {info['path']} ({info['size_bytes']:,} bytes) stored as {info['stored_as']}")
        for note in info["notes"]:
            print(f"  note: {note}")
    return 0
