"""Files other programs load, from a compressed language model: a GGUF for llama.cpp whose quantized linears are
stored in llama.cpp's own Q4_0 / Q8_0 blocks wherever the run's grid is one of theirs exactly, and a Hugging Face
folder plain `transformers` loads.

Which grid goes where (codes and scales unchanged, never rounded again):
- Q4_0 (ŵ = (u − 8)·d, d float16, blocks of 32): symmetric grids of up to 4 bits (codes in [−8, 7], zero point 0),
  u = q + 8, per channel or in groups of a multiple of 32.
- Q8_0 (ŵ = q·d): any grid whose q − z fits int8, the asymmetric 4-bit grids included (q − z in [−15, 15]), per
  channel or in groups of a multiple of 32.
- anything else (groups of 64 whose rows are not whole 32-blocks, scales that are not float16 values, 16-bit codes):
  float16 values of the dequantized weights, said in a note.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from compression.core.errors import InputError
from compression.formats.gguf_write import BLOCK, TensorToWrite, q4_0_blocks, q8_0_blocks, write_gguf
from compression.formats.packed import AffineCodes, decode
from compression.lm import LanguageModel, family_of, save_hf_folder
from compression.pipeline.lm import unpack
from compression.quantization import QParams, QTensor

# Llama-family (Llama, Mistral) state-dict names → llama.cpp's
_LLAMA_NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
GGUF_FILE_TYPES = {"F32": 0, "F16": 1, "Q4_0": 2, "Q8_0": 7}  # llama.cpp's LLAMA_FTYPE_MOSTLY_*


@dataclass(frozen=True)
class ExportedTensor:
    """How one tensor went into an exported file."""

    name: str  # its name in our model
    stored_as: str  # F32, F16, Q8_0, Q4_0
    exact: bool  # the stored values are the model's values exactly
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Export:
    """A written file or folder and how each tensor went in."""

    path: str
    size_bytes: int
    tensors: tuple[ExportedTensor, ...]
    notes: tuple[str, ...]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tensors:
            out[t.stored_as] = out.get(t.stored_as, 0) + 1
        return out

    def to_dict(self) -> dict:
        return {"path": self.path, "size_bytes": self.size_bytes, "stored_as": self.counts(),
                "inexact": [t.to_dict() for t in self.tensors if not t.exact], "notes": list(self.notes)}


def _block_scales(qtensor: QTensor) -> tuple[Tensor, Tensor] | str:
    """(scale, zero point) per 32-block of each row, (rows, columns / 32), or why the grid has none."""
    qp = qtensor.qparams
    rows, columns = qtensor.codes.shape
    if columns % BLOCK:
        return f"rows of {columns} weights are no whole number of {BLOCK}-weight blocks"
    blocks = columns // BLOCK
    if qp.group_size is not None:
        if qp.group_size % BLOCK:
            return f"groups of {qp.group_size} are no whole number of {BLOCK}-weight blocks"
        repeat = qp.group_size // BLOCK
        return (qp.scale.repeat_interleave(repeat, 1)[:, :blocks], qp.zero_point.repeat_interleave(repeat, 1)[:, :blocks])
    if qp.axis == 0 or qp.scale.dim() == 0:
        scale = qp.scale.reshape(-1, 1).expand(rows, blocks) if qp.scale.dim() else qp.scale.expand(rows, blocks)
        zero = qp.zero_point.reshape(-1, 1).expand(rows, blocks) if qp.zero_point.dim() else \
            qp.zero_point.expand(rows, blocks)
        return scale, zero
    return "a grid along another axis than the output rows"


def gguf_blocks(qtensor: QTensor) -> tuple[str, np.ndarray] | str:
    """(GGUF type, packed rows) holding `qtensor` exactly in Q4_0 or Q8_0, or why neither can."""
    if qtensor.kind != "affine" or qtensor.codes.dim() != 2:
        return f"{qtensor.kind} codes of {qtensor.codes.dim()} dimensions"
    found = _block_scales(qtensor)
    if isinstance(found, str):
        return found
    scale, zero = found
    half = scale.half()
    if not torch.equal(half.float(), scale.float()):
        return "its scales are not float16 values (run with float16 scales, as the LM page and CLI do)"
    qp = qtensor.qparams
    rows, columns = qtensor.codes.shape
    zero_full = zero.repeat_interleave(BLOCK, 1)
    values = qtensor.codes.to(torch.int32) - zero_full
    d = half.numpy()
    if bool((zero == 0).all()) and -8 <= qp.quant_min and qp.quant_max <= 7:
        return "Q4_0", q4_0_blocks((values + 8).to(torch.uint8).numpy(), d)
    if int(values.min()) >= -128 and int(values.max()) <= 127:
        return "Q8_0", q8_0_blocks(values.to(torch.int8).numpy(), d)
    return f"codes minus zero points span [{int(values.min())}, {int(values.max())}], wider than int8"


def _permute_rows(x: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's row order for q_proj and k_proj (its rotary embedding pairs rows differently from transformers')."""
    return x.reshape(heads, 2, x.shape[0] // heads // 2, *x.shape[1:]).swapaxes(1, 2).reshape(x.shape)


def _gguf_name(name: str) -> str | None:
    if name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if name == "model.norm.weight":
        return "output_norm.weight"
    if name == "lm_head.weight":
        return "output.weight"
    parts = name.split(".")
    if parts[:2] == ["model", "layers"] and len(parts) >= 5:
        inner = ".".join(parts[3:-1])
        if inner in _LLAMA_NAMES:
            return f"blk.{parts[2]}.{_LLAMA_NAMES[inner]}.{parts[-1]}"
    return None


def _tokenizer_fields(lm: LanguageModel) -> tuple[dict, list[str]]:
    """tokenizer.ggml.* from the model's tokenizer.json: a byte-level BPE as llama.cpp's "gpt2" model."""
    tokenizer = lm.tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return {}, ["no tokenizer was written (not a fast tokenizer): llama.cpp needs one to run the file"]
    spec = json.loads(backend.to_str())
    vocab = dict(tokenizer.get_vocab())
    tokens = [""] * (max(vocab.values()) + 1)
    for token, index in vocab.items():
        tokens[index] = token
    special = set(tokenizer.all_special_ids)
    notes = []
    model = spec.get("model", {})
    merges = [" ".join(m) if isinstance(m, list) else m for m in model.get("merges", [])]
    if model.get("type") != "BPE":
        notes.append(f"the tokenizer is a {model.get('type')} model, written as a plain token list: llama.cpp reads "
                     "byte-level BPE (and SentencePiece) tokenizers")
    fields = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "default", "tokenizer.ggml.tokens": tokens,
              "tokenizer.ggml.token_type": [3 if i in special else 1 for i in range(len(tokens))]}
    if merges:
        fields["tokenizer.ggml.merges"] = merges
    for key, value in (("bos", tokenizer.bos_token_id), ("eos", tokenizer.eos_token_id),
                       ("padding", tokenizer.pad_token_id)):
        if value is not None:
            fields[f"tokenizer.ggml.{key}_token_id"] = int(value)
    return fields, notes


def export_gguf(lm: LanguageModel, qtensors: Mapping[str, QTensor], path: Path, float_type: str = "F16") -> Export:
    """Write `lm` (a Llama-family model; `qtensors` its quantized weights by state-dict name) as a llama.cpp GGUF:
    quantized linears in Q4_0/Q8_0 where their grid is exactly one of those, other 2-D tensors in `float_type`
    (F16 or F32), norms in F32."""
    model, config = lm.model, lm.model.config
    if family_of(model).name != "llama" or config.model_type not in ("llama", "mistral"):
        raise InputError(f"GGUF export writes Llama-family models (Llama, Mistral, SmolLM2); this is "
                         f"{config.model_type}")
    if float_type not in ("F16", "F32"):
        raise InputError(f"float_type must be F16 or F32, got {float_type!r}")
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    tensors, exported, notes, kinds = [], [], [], set()
    for name, param in model.state_dict().items():
        target = _gguf_name(name)
        if target is None or (tied and name == "lm_head.weight"):
            continue
        heads_here = heads if ".attn_q." in target else kv_heads if ".attn_k." in target else None
        found = gguf_blocks(qtensors[name]) if name in qtensors else None
        if isinstance(found, tuple):
            kind, rows = found
            tensors.append(TensorToWrite(target, _permute_rows(rows, heads_here) if heads_here else rows, kind))
            exported.append(ExportedTensor(name, kind, True))
            kinds.add(kind)
            continue
        values = param.detach().float().numpy()
        values = _permute_rows(values, heads_here) if heads_here else values
        kind = "F32" if values.ndim == 1 or float_type == "F32" else "F16"
        tensors.append(TensorToWrite(target, values.astype(np.float16 if kind == "F16" else np.float32), kind))
        exact = kind == "F32" or bool(np.array_equal(values.astype(np.float16).astype(np.float32), values))
        note = f"quantized, but no GGUF block holds its grid exactly: {found}; stored as {kind}" \
            if isinstance(found, str) else ""
        exported.append(ExportedTensor(name, kind, exact, note))
    if any(t.note for t in exported):
        notes.append(f"{sum(1 for t in exported if t.note)} quantized tensor(s) went in as float values: "
                     + next(t.note for t in exported if t.note))
    file_type = "Q4_0" if "Q4_0" in kinds else "Q8_0" if "Q8_0" in kinds else float_type
    tokenizer, tokenizer_notes = _tokenizer_fields(lm)
    fields = {"general.name": lm.info.name, "general.file_type": GGUF_FILE_TYPES[file_type],
              "general.quantization_version": 2,
              "llama.context_length": int(config.max_position_embeddings), "llama.embedding_length": config.hidden_size,
              "llama.block_count": config.num_hidden_layers, "llama.feed_forward_length": config.intermediate_size,
              "llama.attention.head_count": heads, "llama.attention.head_count_kv": kv_heads,
              "llama.rope.dimension_count": head_dim, "llama.rope.freq_base": float(_rope_theta(config)),
              "llama.attention.layer_norm_rms_epsilon": float(config.rms_norm_eps),
              "llama.vocab_size": config.vocab_size, **tokenizer}
    size = write_gguf(Path(path), "llama", fields, tensors)
    return Export(str(path), size, tuple(exported), tuple(notes + tokenizer_notes))


def _rope_theta(config) -> float:
    parameters = getattr(config, "rope_parameters", None) or {}
    return parameters.get("rope_theta") or getattr(config, "rope_theta", None) or 10000.0


def export_hf_folder(lm: LanguageModel, folder: Path) -> Export:
    """A Hugging Face folder plain `transformers` loads: safetensors of the model's own (dequantized) float32
    weights, tokenizer and config."""
    save_hf_folder(lm, Path(folder))
    size = sum(f.stat().st_size for f in Path(folder).iterdir() if f.is_file())
    names = tuple(ExportedTensor(name, "F32", True) for name in lm.model.state_dict())
    note = ("Weights are the compressed model's float32 values (dequantized): transformers loads them with no extra "
            "package; a packed low-bit format it reads (compressed-tensors) needs that package, which this lab "
            "does not install.")
    return Export(str(folder), size, names, (note,))


def from_packed(lm: LanguageModel, data: bytes) -> tuple[LanguageModel, dict[str, QTensor]]:
    """A language model's packed file (`lm --packed-out`) back on its base model: a copy of `lm` holding the file's
    values, and the file's quantized tensors with their own codes and grids (the decoder checks every size first)."""
    state = unpack(data)  # names and shapes are checked against the model below (its name may differ by path)
    expected = dict(lm.model.state_dict())
    pointers = {expected[name].data_ptr() for name in state if name in expected}
    missing = {k for k in expected if k not in state and expected[k].data_ptr() not in pointers}  # tied: stored once
    unknown = set(state) - set(expected)
    if missing or unknown:
        raise InputError(f"the packed file does not fit {lm.info.name}: "
                         f"{len(missing)} tensor(s) missing, {len(unknown)} unknown")
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise InputError(f"the packed file's {name} is {list(tensor.shape)}, the model's "
                             f"{list(expected[name].shape)}")
    model = copy.deepcopy(lm.model)
    model.load_state_dict(state, strict=False)
    qtensors = {}
    for name, value in decode(data).items():
        if isinstance(value, AffineCodes):
            grid = QParams(value.scale.float(), value.zero_point.to(torch.int32), value.quant_min, value.quant_max,
                           value.axis, value.group_size)
            qtensors[name] = QTensor(value.codes.to(torch.int32), grid, value.bits)
    return LanguageModel(model, lm.tokenizer, lm.info), qtensors
