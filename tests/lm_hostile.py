"""Hostile language-model inputs of issue 18, one per class, built small.

A valid tiny Llama is saved as a Hugging Face folder, or written as a GGUF with the `gguf` package's GGUFWriter, and
one thing is changed; GGUF bombs are written byte by byte; sparse files stand in for 600 MB ones. CASES maps a name
to (kind, builder, a fragment of the refusal): "model" cases are a folder or a .gguf given to load_language_model
(the CLI's --model, the server's COMPRESSION_LAB_LM), "text" cases a .txt given to load_text (the CLI's --text).
`python tests/lm_hostile.py DIR` loads every case written by write_all(DIR) and prints
{case: [error type, message, MiB the peak RSS grew]} as JSON; run it under RLIMIT_AS (hostile.run_limited).
"""

from __future__ import annotations

import json
import os
import struct
import sys
from pathlib import Path

import numpy as np

HUGE = 600 * 10 ** 6  # bytes of the sparse stand-ins for the 600 MB files of the issue
EOT = "<|endoftext|>"  # a byte-level BPE vocabulary's end-of-text token (GPT-2's tokenizer adds it when missing)


def tiny_llama_lm(seed: int = 0):
    """The tests' tiny Llama with one more token, EOT, so that its GGUF tokenizer matches its embedding."""
    import torch
    from lm_helpers import tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    from compression.lm.models import LanguageModel, describe

    torch.manual_seed(seed)
    tok = tokenizer()
    tok.add_special_tokens({"eos_token": EOT})
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         bos_token_id=len(tok) - 1, eos_token_id=len(tok) - 1, pad_token_id=0)
    model = LlamaForCausalLM(config).eval().requires_grad_(False)
    return LanguageModel(model, tok, describe(model, "tiny-llama", "test"))


def _permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's order of a rotary projection's rows (transformers undoes it when it reads a GGUF)."""
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(
        weight.shape)


GGUF_NAMES = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
              "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
              "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


def write_gguf(path: Path, lm=None, keep=lambda name: True, metadata: dict | None = None) -> Path:
    """`lm` (default: tiny_llama_lm()) as a GGUF written by GGUFWriter; `keep` filters its tensors, `metadata`
    ({key: (GGUFValueType, value)}) adds or replaces keys."""
    import gguf

    lm = lm or tiny_llama_lm()
    config, state = lm.model.config, {k: v.numpy() for k, v in lm.model.state_dict().items()}
    tokens = _gguf_tokens(lm.tokenizer)
    kind = gguf.GGUFValueType
    keys = {
        "llama.block_count": (kind.UINT32, config.num_hidden_layers),
        "llama.context_length": (kind.UINT32, config.max_position_embeddings),
        "llama.embedding_length": (kind.UINT32, config.hidden_size),
        "llama.feed_forward_length": (kind.UINT32, config.intermediate_size),
        "llama.attention.head_count": (kind.UINT32, config.num_attention_heads),
        "llama.attention.head_count_kv": (kind.UINT32, config.num_key_value_heads),
        "llama.attention.layer_norm_rms_epsilon": (kind.FLOAT32, config.rms_norm_eps),
        "llama.rope.freq_base": (kind.FLOAT32, 10000.0),
        "llama.vocab_size": (kind.UINT32, config.vocab_size),
        "general.alignment": (kind.UINT32, 32),
        "tokenizer.ggml.model": (kind.STRING, "gpt2"),
        "tokenizer.ggml.pre": (kind.STRING, "default"),
        "tokenizer.ggml.tokens": (kind.ARRAY, tokens),
        "tokenizer.ggml.token_type": (kind.ARRAY, [3 if t.startswith("<") else 1 for t in tokens]),
        "tokenizer.ggml.scores": (kind.ARRAY, [0.0] * len(tokens)),
        "tokenizer.ggml.bos_token_id": (kind.UINT32, config.bos_token_id),
        "tokenizer.ggml.eos_token_id": (kind.UINT32, config.eos_token_id),
        "tokenizer.ggml.unknown_token_id": (kind.UINT32, 0),
        **(metadata or {}),
    }
    sub = {"tokenizer.ggml.tokens": kind.STRING, "tokenizer.ggml.token_type": kind.INT32,
           "tokenizer.ggml.scores": kind.FLOAT32}
    tensors = {"token_embd.weight": state["model.embed_tokens.weight"],
               "output_norm.weight": state["model.norm.weight"], "output.weight": state["lm_head.weight"]}
    for block in range(config.num_hidden_layers):
        for hf, name in GGUF_NAMES.items():
            weight = state[f"model.layers.{block}.{hf}.weight"]
            if name == "attn_q":
                weight = _permute(weight, config.num_attention_heads)
            elif name == "attn_k":
                weight = _permute(weight, config.num_key_value_heads)
            tensors[f"blk.{block}.{name}.weight"] = weight
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny")
    for key, (vtype, value) in keys.items():
        writer.add_key_value(key, value, vtype, sub.get(key))
    for name, weight in tensors.items():
        if keep(name):
            writer.add_tensor(name, weight)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


GPT2_NAMES = {"ln_1": "attn_norm", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output", "ln_2": "ffn_norm",
              "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}


def tiny_gpt2_lm(seed: int = 0):
    """A tiny GPT-2 with the tokenizer of tiny_llama_lm and the 1,024 positions transformers reads a GPT-2 GGUF with."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from compression.lm.models import LanguageModel, describe

    tok = tiny_llama_lm().tokenizer
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tok), n_embd=64, n_layer=2, n_head=4, n_positions=1024,
                        bos_token_id=len(tok) - 1, eos_token_id=len(tok) - 1)
    model = GPT2LMHeadModel(config).eval().requires_grad_(False)
    return LanguageModel(model, tok, describe(model, "tiny-gpt2", "test"))


def write_gpt2_gguf(path: Path, lm) -> Path:
    """A tiny GPT-2 as a GGUF written by GGUFWriter (Conv1D weights stored (out, in), as llama.cpp does)."""
    import gguf

    state = {k: v.numpy() for k, v in lm.model.state_dict().items()}
    kind, tokens = gguf.GGUFValueType, _gguf_tokens(lm.tokenizer)
    writer = gguf.GGUFWriter(str(path), "gpt2")
    for key, value in {"block_count": 2, "context_length": 1024, "embedding_length": 64, "feed_forward_length": 256,
                       "attention.head_count": 4}.items():
        writer.add_key_value(f"gpt2.{key}", value, kind.UINT32)
    writer.add_key_value("gpt2.attention.layer_norm_epsilon", 1e-5, kind.FLOAT32)
    _add_tokenizer(writer, tokens, len(tokens) - 1)
    tensors = {"token_embd.weight": "transformer.wte.weight", "position_embd.weight": "transformer.wpe.weight",
               "output_norm.weight": "transformer.ln_f.weight", "output_norm.bias": "transformer.ln_f.bias"}
    for name, hf in tensors.items():
        writer.add_tensor(name, state[hf])
    for block in range(2):
        for hf, name in GPT2_NAMES.items():
            weight = state[f"transformer.h.{block}.{hf}.weight"]
            writer.add_tensor(f"blk.{block}.{name}.weight", weight if hf.startswith("ln") else weight.T.copy())
            writer.add_tensor(f"blk.{block}.{name}.bias", state[f"transformer.h.{block}.{hf}.bias"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _gguf_tokens(tok) -> list[str]:
    """A tokenizer's vocabulary spelled as a byte-level GGUF vocabulary (special tokens as they are)."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    spell = bytes_to_unicode()
    tokens = [""] * len(tok)
    for token, index in tok.get_vocab().items():
        tokens[index] = token if token.startswith("<") else "".join(spell[b] for b in token.encode())
    return tokens


def _add_tokenizer(writer, tokens: list[str], eos: int) -> None:
    import gguf

    kind = gguf.GGUFValueType
    writer.add_key_value("tokenizer.ggml.model", "gpt2", kind.STRING)
    writer.add_key_value("tokenizer.ggml.tokens", tokens, kind.ARRAY, kind.STRING)
    writer.add_key_value("tokenizer.ggml.token_type", [3 if t.startswith("<") else 1 for t in tokens], kind.ARRAY,
                         kind.INT32)
    writer.add_key_value("tokenizer.ggml.scores", [0.0] * len(tokens), kind.ARRAY, kind.FLOAT32)
    writer.add_key_value("tokenizer.ggml.bos_token_id", eos, kind.UINT32)
    writer.add_key_value("tokenizer.ggml.eos_token_id", eos, kind.UINT32)


def patch_gguf(path: Path, change) -> Path:
    """Rewrite fields of a GGUF in place: change(reader, data) edits the bytearray `data`, positions from the reader."""
    import gguf

    data = bytearray(path.read_bytes())
    change(gguf.GGUFReader(str(path)), data)
    path.write_bytes(bytes(data))
    return path


def _tensor_offsets_zero(reader, data: bytearray) -> None:
    for tensor in reader.tensors:  # info: name (u64 length + bytes), u32 n_dims, u64 dims, u32 type, u64 offset
        at = tensor.field.offset + 8 + len(tensor.name.encode()) + 4 + 8 * len(tensor.shape) + 4
        struct.pack_into("<Q", data, at, 0)


def _first_dim_zero(reader, data: bytearray) -> None:
    tensor = reader.tensors[0]
    struct.pack_into("<Q", data, tensor.field.offset + 8 + len(tensor.name.encode()) + 4, 0)


def _alignment_zero(reader, data: bytearray) -> None:
    field = reader.fields["general.alignment"]
    struct.pack_into("<I", data, field.offset + 8 + len(field.name.encode()) + 4, 0)


def _gguf_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _kv(key: str, vtype: int, value: bytes) -> bytes:
    return _gguf_string(key) + struct.pack("<I", vtype) + value


def _bomb(path: Path, entries: list[bytes], key_count: int, hole: int = 0, tail: bytes = b"") -> Path:
    """A GGUF of no tensors: these metadata entries, then `hole` zero bytes left sparse, then `tail`."""
    with open(path, "wb") as f:
        f.write(struct.pack("<4sIQQ", b"GGUF", 3, 0, key_count) + b"".join(entries))
        f.seek(hole, os.SEEK_CUR)
        f.write(tail)
        f.truncate()
    return path


def gguf_array_16m(path: Path) -> Path:
    """A metadata array of 16M u32 items (64 MB, sparse): transformers turned each into a Python int (> 2 GB)."""
    count = 16 << 20
    return _bomb(path, [_kv("general.architecture", 8, _gguf_string("llama")),
                        _kv("llama.rope.dimension_sections", 9, struct.pack("<IQ", 4, count))], 2, 4 * count, b"\0")


def gguf_1m_keys(path: Path) -> Path:
    """A million distinct metadata keys (21 MB)."""
    entries = [_kv("general.architecture", 8, _gguf_string("llama"))]
    entries += [_kv(f"k{i:07d}", 0, b"\0") for i in range(1_000_000)]
    return _bomb(path, entries, len(entries))


def gguf_2m_tokens(path: Path) -> Path:
    """2M (empty) tokens for a model whose vocab_size is 259 (16 MB, sparse)."""
    count = 2 << 20
    return _bomb(path, [_kv("general.architecture", 8, _gguf_string("llama")),
                        _kv("llama.vocab_size", 4, struct.pack("<I", 259)),
                        _kv("tokenizer.ggml.model", 8, _gguf_string("gpt2")),
                        _kv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, count))], 4, 8 * count, b"\0")


def gguf_tokens_disagree(path: Path) -> Path:
    """1,000 tokens while the model's vocab_size and embedding have 73 rows."""
    tokens = [f"t{i}" for i in range(1000)]
    import gguf

    kind = gguf.GGUFValueType
    return write_gguf(path, metadata={"tokenizer.ggml.tokens": (kind.ARRAY, tokens),
                                      "tokenizer.ggml.token_type": (kind.ARRAY, [1] * 1000),
                                      "tokenizer.ggml.scores": (kind.ARRAY, [0.0] * 1000)})


def _sparse(path: Path, head: bytes = b"", size: int = HUGE) -> Path:
    """A file of `size` bytes that starts with `head` and takes no disk for the rest."""
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)
    return path


def huge_file_in_folder(folder: Path, name: str) -> Path:
    """A valid tiny Llama folder whose `name` is a 600 MB (sparse) file."""
    _sparse(hf_folder(folder) / name, b"{")
    return folder


def hf_folder(folder: Path, lm=None) -> Path:
    """A valid tiny Llama as a Hugging Face folder."""
    from lm_helpers import tiny_llama

    from compression.lm import save_hf_folder

    save_hf_folder(lm or tiny_llama(), folder)
    return folder


def _edit_json(folder: Path, name: str, change) -> Path:
    path = folder / name
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value))
    return folder


def _config(folder: Path, **fields) -> Path:
    return _edit_json(hf_folder(folder), "config.json", lambda c: c.update(fields))


def tokenizer_vocab(folder: Path, size: int) -> Path:
    """A tokenizer.json whose WordLevel vocabulary holds `size` tokens."""
    hf_folder(folder)
    raw = ('{"model": {"type": "WordLevel", "unk_token": "<unk>", "vocab": {'
           + ", ".join(f'"t{i}": {i}' for i in range(size)) + "}}}")
    (folder / "tokenizer.json").write_text(raw)
    return folder


def weights_missing_tensor(folder: Path) -> Path:
    from safetensors.torch import load_file, save_file

    hf_folder(folder)
    state = load_file(folder / "model.safetensors")
    del state["model.layers.1.mlp.up_proj.weight"]
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def weights_overlapping(folder: Path) -> Path:
    """Two tensors of the same shape and dtype pointing at the same bytes."""
    hf_folder(folder)
    raw = (folder / "model.safetensors").read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + size])
    down, up = header["model.layers.0.mlp.down_proj.weight"], header["model.layers.1.mlp.down_proj.weight"]
    up["data_offsets"] = list(down["data_offsets"])
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + size:])
    return folder


def index_to(folder: Path, shard: str, write_bin: bool = False) -> Path:
    """model.safetensors replaced by an index mapping every weight to `shard`."""
    from safetensors import safe_open

    hf_folder(folder)
    with safe_open(folder / "model.safetensors", "pt") as f:
        names = list(f.keys())
    if write_bin:
        import torch
        from safetensors.torch import load_file

        torch.save(load_file(folder / "model.safetensors"), folder / shard)
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": dict.fromkeys(names, shard)}))
    return folder


def index_to_symlink(folder: Path) -> Path:
    """An index naming a shard that is a symbolic link to a file outside the folder."""
    hf_folder(folder)
    outside = folder.parent / f"{folder.name}-outside.safetensors"
    (folder / "model.safetensors").rename(outside)
    (folder / "shard.safetensors").symlink_to(outside)
    from safetensors import safe_open

    with safe_open(outside, "pt") as f:
        names = list(f.keys())
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": dict.fromkeys(names, "shard.safetensors")}))
    return folder


def tokenizer_symlink(folder: Path) -> Path:
    hf_folder(folder)
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer.json").symlink_to("/dev/zero")
    return folder


def remote_code_files(folder: Path) -> Path:
    hf_folder(folder)
    (folder / "modeling_evil.py").write_text("import os\nos.system('touch /tmp/pwned')\n")
    (folder / "tokenization_evil.py").write_text("raise SystemExit('ran')\n")
    return folder


def _deep(folder: Path, name: str) -> Path:
    hf_folder(folder)
    (folder / name).write_text('{"model": ' + "[" * 100_000 + "]" * 100_000 + "}")
    return folder


TEXT = ("In the beginning God created the heaven and the earth. And the earth was without form, and void; "
        "and darkness was upon the face of the deep.\n") * 40


def _text(path: Path, raw: bytes) -> Path:
    path.write_bytes(raw)
    return path


# name -> (kind, builder(path), a fragment of the refusal). Model cases build at path (a folder, or a file ending
# .gguf); text cases write a .txt.
CASES = {
    # files over the upload cap are refused by their size, never read
    "config-600mb": ("model", lambda p: huge_file_in_folder(p, "config.json"), "MiB limit for a file"),
    "tokenizer-600mb": ("model", lambda p: huge_file_in_folder(p, "tokenizer.json"), "MiB limit for a file"),
    "weights-600mb": ("model", lambda p: huge_file_in_folder(p, "model.safetensors"), "MiB limit for a file"),
    "gguf-600mb": ("model", lambda p: _sparse(p, b"GGUF"), "MiB limit for a file"),
    "text-600mb": ("text", lambda p: _sparse(p, b"word "), "MiB limit for a file"),
    # GGUF metadata bombs and the tokenizer's vocabulary
    "gguf-array-16m": ("model", gguf_array_16m, "holds 16,777,216 items; the limit is 1,048,576"),
    "gguf-1m-keys": ("model", gguf_1m_keys, "declares 1,000,001 metadata keys"),
    "gguf-2m-tokens": ("model", gguf_2m_tokens, "'tokenizer.ggml.tokens' holds 2,097,152 items"),
    "gguf-tokens-disagree": ("model", gguf_tokens_disagree, "the tokenizer lists 1,000 tokens but token_embd"),
    "gguf-alignment-0": ("model", lambda p: patch_gguf(write_gguf(p), _alignment_zero), "general.alignment"),
    "gguf-dimension-0": ("model", lambda p: patch_gguf(write_gguf(p), _first_dim_zero), "has a dimension of 0"),
    "tokenizer-4m-vocab": ("model", lambda p: tokenizer_vocab(p, 4 << 20), "MiB limit for a JSON file"),
    "tokenizer-600k-vocab": ("model", lambda p: tokenizer_vocab(p, 600_000),
                             "the vocabulary holds 600,000 tokens; the limit is 524,288"),
    "tokenizer-over-config": ("model", lambda p: tokenizer_vocab(p, 1000),
                              "the vocabulary holds 1,000 tokens but the model's config has vocab_size 72"),
    "tokenizer-deep": ("model", lambda p: _deep(p, "tokenizer.json"), "nested too deeply"),
    "generation-config-deep": ("model", lambda p: _deep(p, "generation_config.json"), "nested too deeply"),
    # missing or overlapping weights
    "gguf-only-token-embd": ("model", lambda p: write_gguf(p, keep=lambda name: name == "token_embd.weight"),
                             "lacks 'output_norm.weight'"),
    "gguf-offsets-zero": ("model", lambda p: patch_gguf(write_gguf(p), _tensor_offsets_zero), "overlap in the file"),
    "weights-missing-tensor": ("model", weights_missing_tensor, "lacks 'model.layers.1.mlp.up_proj.weight'"),
    "weights-overlapping": ("model", weights_overlapping, "overlap in the file"),
    # config values
    "config-layers-1e6": ("model", lambda p: _config(p, num_hidden_layers=10 ** 6),
                          "'num_hidden_layers' must be an integer in [1, 256], got 1000000"),
    "config-positions-1e12": ("model", lambda p: _config(p, max_position_embeddings=10 ** 12),
                              "'max_position_embeddings' must be an integer in [1, 1048576]"),
    "config-vocab-1e9": ("model", lambda p: _config(p, vocab_size=10 ** 9), "'vocab_size' must be an integer"),
    "config-over-budget": ("model", lambda p: _config(p, hidden_size=16384, intermediate_size=65536,
                                                     num_attention_heads=128, num_key_value_heads=8,
                                                     num_hidden_layers=100),
                           "parameters; the limit is 536,870,912 ($COMPRESSION_LAB_MAX_LM_PARAMS)"),
    # pickled weights and shards outside the folder
    "index-to-bin": ("model", lambda p: index_to(p, "pytorch_model.bin", write_bin=True),
                     "only .safetensors weights are read"),
    "index-outside": ("model", lambda p: index_to(p, "../outside.safetensors"), "not a file inside the folder"),
    "index-absolute": ("model", lambda p: index_to(p, "/etc/outside.safetensors"), "not a file inside the folder"),
    "index-symlink": ("model", index_to_symlink, "shard.safetensors is a symbolic link"),
    "tokenizer-symlink": ("model", tokenizer_symlink, "tokenizer.json is a symbolic link"),
    # remote code
    "remote-code-auto-map": ("model", lambda p: _config(p, auto_map={"AutoModelForCausalLM": "modeling_evil.Evil"}),
                             "asks for remote code (auto_map)"),
    "remote-code-files": ("model", remote_code_files, "ships Python code (modeling_evil.py, tokenization_evil.py)"),
    # text that is not text
    "text-binary": ("text", lambda p: _text(p, np.random.default_rng(0).bytes(5000)), "is not UTF-8 text"),
    "text-nul": ("text", lambda p: _text(p, TEXT.encode() + b"\0" + TEXT.encode()), "control character U+0000"),
    "text-escape-codes": ("text", lambda p: _text(p, ("\x1b[31m" + TEXT).encode()), "control character U+001B"),
    "text-one-long-line": ("text", lambda p: _text(p, b"word " * 420_000), "has a line longer than 1,048,576 bytes"),
}


def case_path(folder: Path, name: str) -> Path:
    """Where a case lives: a folder for Hugging Face cases, a file for GGUF and text cases."""
    kind = CASES[name][0]
    if kind == "text":
        return folder / f"{name}.txt"
    return folder / f"{name}.gguf" if name.startswith("gguf") else folder / name


VALID = {"valid-folder": hf_folder, "valid.gguf": write_gguf, "valid.txt": lambda p: _text(p, TEXT.encode())}


def write_all(folder: Path, names=None) -> None:
    """Write every case (or those named) into `folder`, and the valid inputs VALID beside them."""
    for name, make in VALID.items():
        make(folder / name)
    for name in names or CASES:
        path = case_path(folder, name)
        if path.suffix not in (".gguf", ".txt"):
            path.mkdir(parents=True, exist_ok=True)
        CASES[name][1](path)


def load(kind: str, path: Path) -> None:
    from compression.lm import load_language_model, load_text

    if kind == "model":
        load_language_model(str(path))
    else:
        load_text(str(path))


def main(folder: Path) -> None:
    """Load every case written in `folder`; print {case: [error type, message, MiB the peak RSS grew]} as JSON."""
    import resource

    from compression.core.errors import InputError

    results = {}
    load("model", folder / "valid-folder")  # the valid inputs load, and their imports are done before measuring
    load("model", folder / "valid.gguf")
    load("text", folder / "valid.txt")
    for name, (kind, _, _) in CASES.items():
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            load(kind, case_path(folder, name))
            outcome = ["loaded", ""]
        except InputError as exc:
            outcome = [type(exc).__name__, str(exc)]
        except BaseException as exc:  # noqa: BLE001  the parent test reports what escaped
            outcome = [type(exc).__name__, str(exc)[:300]]
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024  # ru_maxrss is in KiB
        results[name] = [*outcome, round(grown, 1)]
    print(json.dumps(results))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main(Path(sys.argv[1]))
