"""What a language model's files describe, checked before anything is built from them: the config's sizes (sane ranges
and the parameter budget, $COMPRESSION_LAB_MAX_LM_PARAMS), the tokenizer's vocabulary (bounded, inside the model's),
and every weight the architecture needs (present, with its shape), for a Hugging Face folder and for a GGUF file.

The file formats themselves are read bounded by compression.formats (hf_folder, gguf); this module knows the two
model families. Every refusal is an InputError of one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from compression.core import settings
from compression.core.errors import InputError, LimitExceeded
from compression.formats import limits
from compression.formats.gguf import STRING, GGUFArray, GGUFHeader
from compression.lm.layer_map import FAMILIES

MAX_LAYERS = 256  # the largest open models have about 126
MAX_HIDDEN = 1 << 15
MAX_INTERMEDIATE = 1 << 17
MAX_HEADS = 1024
MAX_HEAD_DIM = 1024
MAX_POSITIONS = 1 << 20  # context length; 10**12 would be accepted by transformers and break later
MAX_VOCAB = 1 << 19  # 524,288 tokens; the largest real vocabularies hold about 262k
TOKENIZER_MODELS = ("BPE", "WordLevel", "WordPiece", "Unigram")  # what the `tokenizers` library builds
GGUF_ARCHITECTURES = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "gpt2": "gpt2"}  # -> our layout
GGUF_TOKENIZERS = ("llama", "gpt2")  # sentencepiece-like and byte-level BPE vocabularies
GGUF_GPT2_POSITIONS = 1024  # transformers builds a GPT-2 from a GGUF with GPT2Config's default n_positions
_GGUF_SPECIAL_IDS = ("bos_token_id", "eos_token_id", "unknown_token_id", "padding_token_id")


@dataclass(frozen=True)
class Dims:
    """The sizes a config or a GGUF file declares, each within its range."""

    layout: str  # "llama" (Llama, Mistral), "qwen2" (Llama with q/k/v biases) or "gpt2"
    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    positions: int
    tied: bool  # the output layer reuses the token embedding

    @property
    def params(self) -> int:
        """Parameters of the model these sizes build (biases of the optional kinds left out)."""
        h, i, q, kv = self.hidden, self.intermediate, self.heads * self.head_dim, self.kv_heads * self.head_dim
        embeddings = self.vocab * h * (1 if self.tied else 2)
        if self.layout == "gpt2":
            layer = h * 3 * h + 3 * h + h * h + h + 2 * h * i + i + h + 4 * h
            return embeddings + self.positions * h + self.layers * layer + 2 * h
        layer = 2 * h * q + 2 * h * kv + 3 * h * i + 2 * h + (q + 2 * kv if self.layout == "qwen2" else 0)
        return embeddings + self.layers * layer + h


def config_dims(config: Mapping, where: str) -> Dims:
    """The sizes a config.json declares, each field an integer in its range, the model within the budget."""
    model_type = config.get("model_type")
    if model_type not in FAMILIES:
        raise InputError(f"unsupported architecture {model_type!r}; supported: {', '.join(sorted(FAMILIES))}")
    if config.get("quantization_config") is not None:
        raise InputError(f"{where}: quantized checkpoints (quantization_config) are not read; give the float weights "
                         "or a .gguf file")

    def field(key: str, high: int, default: object = None) -> int:
        if key not in config or (config[key] is None and default is not None):
            if default is None:
                raise InputError(f"{where} has no {key!r}")
            return default
        return limits.int_field(config, key, where, 1, high)

    if FAMILIES[model_type].name == "gpt2":
        hidden, heads = field("n_embd", MAX_HIDDEN), field("n_head", MAX_HEADS)
        _divides(heads, hidden, "n_head", "n_embd", where)
        dims = Dims("gpt2", field("vocab_size", MAX_VOCAB), hidden, field("n_inner", MAX_INTERMEDIATE, 4 * hidden),
                    field("n_layer", MAX_LAYERS), heads, heads, hidden // heads, field("n_positions", MAX_POSITIONS),
                    _flag(config, "tie_word_embeddings", True, where))
    else:
        hidden, heads = field("hidden_size", MAX_HIDDEN), field("num_attention_heads", MAX_HEADS)
        kv_heads = field("num_key_value_heads", MAX_HEADS, heads)
        if "head_dim" not in config or config["head_dim"] is None:
            _divides(heads, hidden, "num_attention_heads", "hidden_size", where)
        _divides(kv_heads, heads, "num_key_value_heads", "num_attention_heads", where)
        dims = Dims("qwen2" if model_type == "qwen2" else "llama", field("vocab_size", MAX_VOCAB), hidden,
                    field("intermediate_size", MAX_INTERMEDIATE), field("num_hidden_layers", MAX_LAYERS), heads,
                    kv_heads, field("head_dim", MAX_HEAD_DIM, hidden // heads),
                    field("max_position_embeddings", MAX_POSITIONS), _flag(config, "tie_word_embeddings", False, where))
    check_params(dims.params, where)
    return dims


def check_params(params: int, where: str) -> None:
    limit = settings.max_lm_params()
    if params > limit:
        raise LimitExceeded(f"{where} describes a model of {params:,} parameters; the limit is {limit:,} "
                            f"(${settings.MAX_LM_PARAMS_ENV})")


def check_tokenizer(tokenizer: Mapping, vocab_size: int, where: str) -> None:
    """A tokenizer.json's vocabulary: of a kind `tokenizers` builds, at most MAX_VOCAB tokens, every id a row of the
    model's embedding (a 4M-entry vocabulary aborted the Rust tokenizer, taking the process with it)."""
    model = tokenizer.get("model")
    kind = model.get("type") if isinstance(model, dict) else None
    if kind not in TOKENIZER_MODELS:
        raise InputError(f"{where}: the tokenizer model {str(kind)[:40]!r} is not one of {', '.join(TOKENIZER_MODELS)}")
    vocab = model.get("vocab")
    if not isinstance(vocab, list if kind == "Unigram" else dict):
        raise InputError(f"{where}: the {kind} tokenizer has no vocabulary")
    if len(vocab) > MAX_VOCAB:
        raise LimitExceeded(f"{where}: the vocabulary holds {len(vocab):,} tokens; the limit is {MAX_VOCAB:,}")
    if len(vocab) > vocab_size:
        raise InputError(f"{where}: the vocabulary holds {len(vocab):,} tokens but the model's config has "
                         f"vocab_size {vocab_size:,}")
    added = tokenizer.get("added_tokens") or []
    if not isinstance(added, list) or len(added) > MAX_VOCAB:
        raise InputError(f"{where}: added_tokens must be a list of at most {MAX_VOCAB:,} tokens")
    if not all(isinstance(token, dict) and isinstance(token.get("content"), str) for token in added):
        raise InputError(f"{where}: each of added_tokens must have an id and a content")
    for part in ("normalizer", "pre_tokenizer", "post_processor", "decoder"):
        value = tokenizer.get(part)
        if value is not None and not (isinstance(value, dict) and isinstance(value.get("type"), str)):
            raise InputError(f"{where}: the {part} is not a tokenizer component (an object with a type)")
    ids = list(vocab.values()) if isinstance(vocab, dict) else []
    ids += [token.get("id") for token in added]
    for token_id in ids:
        if isinstance(token_id, bool) or not isinstance(token_id, int) or not 0 <= token_id < vocab_size:
            raise InputError(f"{where}: token id {str(token_id)[:40]} is outside the model's vocabulary of "
                             f"{vocab_size:,} (config.json vocab_size)")
    merges = model.get("merges", [])
    if not isinstance(merges, list) or len(merges) > 2 * MAX_VOCAB:
        raise InputError(f"{where}: the merges must be a list of at most {2 * MAX_VOCAB:,}")


def check_weights(held: Mapping[str, tuple], needed: Mapping[str, tuple], prefix: str, where: str) -> None:
    """Every tensor the architecture needs is held with its shape (transformers would make up a missing one).

    `held` maps names to shapes; a name may lack the base model's `prefix` (GPT-2 files often say h.0..., not
    transformer.h.0...), as transformers accepts."""
    missing = []
    for name, shape in needed.items():
        short = name[len(prefix) + 1:] if name.startswith(prefix + ".") else None
        found = name if name in held else short if short in held else None
        if found is None:
            missing.append(name)
        elif tuple(held[found]) != tuple(shape):
            raise InputError(f"{where}: tensor {found!r} has shape {list(held[found])}; the config needs "
                             f"{list(shape)}")
    if missing:
        more = f" and {len(missing) - 1:,} more" if len(missing) > 1 else ""
        raise InputError(f"{where} lacks {missing[0]!r}{more}, which the architecture needs (a missing weight is "
                         "never made up)")


def gguf_dims(header: GGUFHeader, where: str) -> Dims:
    """The sizes a GGUF file's metadata declares, and its tokenizer's vocabulary checked against the embedding."""
    meta = header.metadata
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        raise InputError(f"{where} has no general.architecture")
    if arch not in GGUF_ARCHITECTURES:
        raise InputError(f"{where}: unsupported GGUF architecture {arch[:40]!r}; supported: "
                         f"{', '.join(sorted(GGUF_ARCHITECTURES))}")

    def field(key: str, high: int, default: int | None = None) -> int:
        name = f"{arch}.{key}"
        if name not in meta and default is not None:
            return default
        value = meta.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
            raise InputError(f"{where}: metadata {name} must be an integer in [1, {high:,}], got {str(value)[:40]}")
        return value

    vocab = _gguf_vocab(header, where)
    if f"{arch}.vocab_size" in meta and field("vocab_size", MAX_VOCAB) != vocab:
        raise InputError(f"{where}: {arch}.vocab_size says {meta[f'{arch}.vocab_size']:,} but the tokenizer lists "
                         f"{vocab:,} tokens")
    layout = GGUF_ARCHITECTURES[arch]
    hidden, heads = field("embedding_length", MAX_HIDDEN), field("attention.head_count", MAX_HEADS)
    kv_heads = field("attention.head_count_kv", MAX_HEADS, heads)
    head_dim = field("rope.dimension_count", MAX_HEAD_DIM, hidden // heads) if layout == "llama" else hidden // heads
    if layout != "llama" or f"{arch}.rope.dimension_count" not in meta:
        _divides(heads, hidden, f"{arch}.attention.head_count", f"{arch}.embedding_length", where)
    _divides(kv_heads, heads, f"{arch}.attention.head_count_kv", f"{arch}.attention.head_count", where)
    intermediate = 4 * hidden if layout == "gpt2" else field("feed_forward_length", MAX_INTERMEDIATE)
    positions = field("context_length", MAX_POSITIONS)
    if layout == "gpt2" and positions != GGUF_GPT2_POSITIONS:
        raise InputError(f"{where}: a GPT-2 GGUF is read with {GGUF_GPT2_POSITIONS:,} positions (transformers "
                         f"ignores its context length), this one has {positions:,}")
    dims = Dims(layout, vocab, hidden, intermediate, field("block_count", MAX_LAYERS), heads, kv_heads, head_dim,
                positions, "output.weight" not in header.tensors)
    check_params(dims.params, where)
    return dims


def check_gguf_tensors(header: GGUFHeader, dims: Dims, where: str) -> None:
    """Every tensor the architecture needs is in the file with its shape; a file holding only token_embd (whose
    missing weights transformers would initialise at random) is refused."""
    held = {name: tensor.dims for name, tensor in header.tensors.items()}
    check_weights(held, gguf_tensors(dims), "", where)


def gguf_tensors(dims: Dims) -> dict[str, tuple[int, ...]]:
    """{GGUF tensor name: dims in ggml order} the architecture needs."""
    h, i, v = dims.hidden, dims.intermediate, dims.vocab
    q, kv = dims.heads * dims.head_dim, dims.kv_heads * dims.head_dim
    needed = {"token_embd.weight": (h, v), "output_norm.weight": (h,)}
    if not dims.tied:
        needed["output.weight"] = (h, v)
    if dims.layout == "gpt2":
        needed.update({"position_embd.weight": (h, dims.positions), "output_norm.bias": (h,)})
        layer = {"attn_norm.weight": (h,), "attn_norm.bias": (h,), "attn_qkv.weight": (h, 3 * h),
                 "attn_qkv.bias": (3 * h,), "attn_output.weight": (h, h), "attn_output.bias": (h,),
                 "ffn_norm.weight": (h,), "ffn_norm.bias": (h,), "ffn_up.weight": (h, i), "ffn_up.bias": (i,),
                 "ffn_down.weight": (i, h), "ffn_down.bias": (h,)}
    else:
        layer = {"attn_norm.weight": (h,), "attn_q.weight": (h, q), "attn_k.weight": (h, kv),
                 "attn_v.weight": (h, kv), "attn_output.weight": (q, h), "ffn_norm.weight": (h,),
                 "ffn_gate.weight": (h, i), "ffn_up.weight": (h, i), "ffn_down.weight": (i, h)}
        if dims.layout == "qwen2":
            layer.update({"attn_q.bias": (q,), "attn_k.bias": (kv,), "attn_v.bias": (kv,)})
    for block in range(dims.layers):
        needed.update({f"blk.{block}.{name}": shape for name, shape in layer.items()})
    return needed


def _gguf_vocab(header: GGUFHeader, where: str) -> int:
    """The number of tokens in the file's tokenizer, which must be the embedding's rows, with its tables agreeing."""
    meta = header.metadata
    kind = meta.get("tokenizer.ggml.model")
    if kind not in GGUF_TOKENIZERS:
        raise InputError(f"{where}: tokenizer.ggml.model is {str(kind)[:40]!r}; supported: "
                         f"{', '.join(GGUF_TOKENIZERS)}")
    tokens = meta.get("tokenizer.ggml.tokens")
    if not isinstance(tokens, GGUFArray) or tokens.item_type != STRING or tokens.length < 1:
        raise InputError(f"{where} has no tokenizer.ggml.tokens list")
    count = tokens.length
    if count > MAX_VOCAB:
        raise LimitExceeded(f"{where}: the tokenizer lists {count:,} tokens; the limit is {MAX_VOCAB:,}")
    embedding = header.tensors.get("token_embd.weight")
    if embedding is not None and (len(embedding.dims) != 2 or embedding.dims[1] != count):
        raise InputError(f"{where}: the tokenizer lists {count:,} tokens but token_embd.weight has dimensions "
                         f"{list(embedding.dims)}")
    for table in ("scores", "token_type"):
        value = meta.get(f"tokenizer.ggml.{table}")
        if value is not None and (not isinstance(value, GGUFArray) or value.length != count):
            raise InputError(f"{where}: tokenizer.ggml.{table} does not list one entry per token ({count:,})")
    merges = meta.get("tokenizer.ggml.merges")
    if merges is not None and (not isinstance(merges, GGUFArray) or merges.item_type != STRING):
        raise InputError(f"{where}: tokenizer.ggml.merges is not a list of strings")
    if merges is None and "tokenizer.ggml.scores" not in meta:
        raise InputError(f"{where}: the tokenizer has neither merges nor scores to build its merges from")
    for key in _GGUF_SPECIAL_IDS:
        value = meta.get(f"tokenizer.ggml.{key}")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < count):
            raise InputError(f"{where}: tokenizer.ggml.{key} {str(value)[:40]} is not one of the {count:,} tokens")
    return count


def _divides(part: int, whole: int, part_name: str, whole_name: str, where: str) -> None:
    if whole % part:
        raise InputError(f"{where}: {whole_name} ({whole:,}) is not a multiple of {part_name} ({part:,})")


def _flag(config: Mapping, key: str, default: bool, where: str) -> bool:
    value = config.get(key, default)
    if not isinstance(value, bool):
        raise InputError(f"{where}: {key!r} must be true or false, got {str(value)[:40]}")
    return value
