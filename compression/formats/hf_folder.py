"""A Hugging Face model folder read bounded, before transformers opens it: every file it would read is a plain file
inside the folder within the upload cap, every JSON file is depth-checked, the weights are safetensors only (an index
may name no other file and no file outside the folder), each shard's header is checked (shapes, offsets inside the
file, no overlaps, the element budget), and nothing asks for remote code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from compression.core.errors import InputError, LimitExceeded
from compression.formats import limits, safetensors_header

CONFIG = "config.json"
TOKENIZER = "tokenizer.json"
WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
# Further files transformers reads from a model folder when they are there (checked, never required).
JSON_FILES = ("generation_config.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
              "chat_template.json")
OTHER_FILES = ("chat_template.jinja", "vocab.json", "merges.txt", "vocab.txt", "tokenizer.model", "spiece.model")
PICKLED = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
MAX_JSON_BYTES = 64 << 20  # one JSON file: the largest real tokenizer.json are about 35 MB, and parsing costs ~10x
_PLAIN_NAME = re.compile(r"[\w.\-]+")  # a shard named by the index: a file name, never a path


@dataclass(frozen=True)
class FolderFiles:
    """What a folder's files say, checked: its config, its tokenizer and the tensors its weights hold."""

    config: dict
    tokenizer: dict
    tensors: dict[str, tuple[str, tuple[int, ...]]]  # name -> (safetensors dtype, shape)


def read_folder(folder: Path, max_elements: int, env: str, capped: bool = True) -> FolderFiles:
    """Check a model folder's files and read its config, tokenizer and weight headers; refuse in one line.

    `max_elements` bounds the tensor elements of all shards together (`env` names that limit). `capped` False skips
    the upload cap (a folder this program wrote itself, such as a dequantized GGUF).
    """
    folder = Path(folder)
    where = folder.name or str(folder)
    code = sorted(p.name for p in folder.glob("*.py"))
    if code:
        raise InputError(f"{where}: refused, it ships Python code ({', '.join(code[:3])}) that transformers would run "
                         "as remote code; Compression Lab never runs code from a model folder")
    for name in (CONFIG, TOKENIZER):
        if not (folder / name).exists() and not (folder / name).is_symlink():
            raise InputError(f"{where} has no {name}")
    config = read_json(folder / CONFIG, f"{where}/{CONFIG}", capped)
    if not isinstance(config, dict):
        raise InputError(f"{where}/{CONFIG} is not a JSON object")
    asking = [CONFIG] if "auto_map" in config else []
    for name in JSON_FILES:
        if (folder / name).exists() or (folder / name).is_symlink():
            value = read_json(folder / name, f"{where}/{name}", capped)
            asking += [name] if isinstance(value, dict) and "auto_map" in value else []
    if asking:
        raise InputError(f"{where}: refused, its {asking[0]} asks for remote code (auto_map); Compression Lab never "
                         "runs code from a model folder")
    for name in OTHER_FILES:
        if (folder / name).exists() or (folder / name).is_symlink():
            limits.check_regular_file(folder / name, f"{where}/{name}", capped, follow_symlinks=False)
    tokenizer = read_json(folder / TOKENIZER, f"{where}/{TOKENIZER}", capped)
    if not isinstance(tokenizer, dict):
        raise InputError(f"{where}/{TOKENIZER} is not a JSON object")
    tensors = _weights(folder, where, capped, limits.ElementBudget(f"{where} (weights)", max_elements, env))
    return FolderFiles(config, tokenizer, tensors)


def read_json(path: Path, where: str, capped: bool = True) -> object:
    """A JSON file of the folder: a plain file within the caps, parsed no deeper than limits.MAX_NESTING."""
    size = limits.check_regular_file(path, where, capped, follow_symlinks=False)
    if size > MAX_JSON_BYTES:
        raise LimitExceeded(f"{where}: {size:,} bytes is over the {MAX_JSON_BYTES >> 20} MiB limit for a JSON file "
                            "of a model")
    return limits.parse_json(path.read_bytes(), where, what="the file")


def _weights(folder: Path, where: str, capped: bool, budget: limits.ElementBudget) -> dict[str, tuple]:
    """{tensor name: (dtype, shape)} of the weights transformers would load: model.safetensors, else the index's."""
    if (folder / WEIGHTS).exists() or (folder / WEIGHTS).is_symlink():  # transformers looks for this one first
        return _shard(folder / WEIGHTS, f"{where}/{WEIGHTS}", capped, budget)
    if not (folder / INDEX).exists() and not (folder / INDEX).is_symlink():
        pickled = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLED)
        if pickled:
            raise InputError(f"{where}: refused, its weights are pickled ({pickled[0]}), which is never read; save "
                             "them as safetensors")
        raise InputError(f"{where} has no {WEIGHTS} (nor {INDEX})")
    index = read_json(folder / INDEX, f"{where}/{INDEX}", capped)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise InputError(f"{where}/{INDEX} has no weight_map")
    if len(weight_map) > safetensors_header.MAX_TENSORS:
        raise LimitExceeded(f"{where}/{INDEX} lists {len(weight_map):,} tensors; the limit is {safetensors_header.MAX_TENSORS:,}")
    wanted: dict[str, list[str]] = {}
    for name, file in weight_map.items():
        if not isinstance(file, str) or not _PLAIN_NAME.fullmatch(file) or file in (".", ".."):
            raise InputError(f"{where}/{INDEX}: tensor {name[:80]!r} points at {str(file)[:80]!r}, not a file "
                             "inside the folder")
        if not file.endswith(".safetensors"):
            raise InputError(f"{where}: refused, its index maps {name[:80]!r} to {file[:80]!r}: only .safetensors "
                             "weights are read (pickled .bin files never are)")
        wanted.setdefault(file, []).append(name)
    tensors = {}
    for file, names in sorted(wanted.items()):
        path = folder / file
        if not path.exists() and not path.is_symlink():
            raise InputError(f"{where}/{INDEX} names {file}, which is not in the folder")
        held = _shard(path, f"{where}/{file}", capped, budget)
        missing = [name for name in names if name not in held]
        if missing:
            raise InputError(f"{where}/{INDEX} puts {missing[0][:80]!r} in {file}, which does not hold it")
        tensors.update((name, held[name]) for name in names)
    return tensors


def _shard(path: Path, where: str, capped: bool, budget: limits.ElementBudget) -> dict[str, tuple]:
    """A safetensors file's header, checked: dtypes, shapes, byte ranges inside the file and apart, the budget."""
    size = limits.check_regular_file(path, where, capped, follow_symlinks=False)
    with open(path, "rb") as file:
        length = safetensors_header.header_length(file.read(8), size, where)
        stored, _ = safetensors_header.check_header(file.read(length), size, where, budget)
    return {name: (info.dtype, tuple(info.shape)) for name, info in stored.items()}
