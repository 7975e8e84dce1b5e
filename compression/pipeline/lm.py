"""One-shot compression of a causal language model through the shared verb, its packed file and its sizes.

The language-model family supplies its layer map (`lm.DecoderLayers`); the techniques are the same ones every
model uses. A language model's packed file keeps float16 for everything it does not compress, the format the
float16 baseline it is compared with uses.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass

import torch
from torch import Tensor

from compression.calibration import BlockStep, get_weight, is_conv1d
from compression.core.errors import InputError
from compression.formats import limits
from compression.formats.packed import NMValues, SparseValues, decode_state, encode, encoded_size, read_metadata
from compression.lm import DecoderLayers, LanguageModel, decoder_layers, family_of, layer_linears
from compression.pipeline.oneshot import OneShotConfig, OneShotResult, compress
from compression.pruning import PruneConfig
from compression.quantization import QuantConfig, SmoothQuantConfig, packed_codes, raw_float

PRUNE_METHODS = ("magnitude", "wanda", "sparsegpt")
QUANT_METHODS = ("rtn", "gptq", "awq")
WA_METHODS = ("smoothquant", "naive")  # naive: the same W·A· without migrating the outliers


def lm_config(method: str, sparsity: float = 0.5, nm: tuple[int, int] | None = None, bits: int = 4,
              group_size: int = 64, alpha: float = 0.5, wa_bits: int = 8, act_granularity: str = "per-token",
              act_order: bool = True, percdamp: float = 0.01, scope: str = "row",
              scheme: str = "asymmetric") -> OneShotConfig:
    """A language-model method as the shared configs express it: pruning ranks per row; weights round onto
    asymmetric grids (or `scheme` symmetric ones, the grids llama.cpp's Q4_0 and Q8_0 hold) with float16 scales per
    group of input columns (group_size 0: per output channel)."""
    if method in PRUNE_METHODS:
        return PruneConfig(amount=None if nm else sparsity, method=method, scope=scope, nm=nm, percdamp=percdamp)
    if method in QUANT_METHODS:
        return QuantConfig(bits=bits, scheme=scheme, granularity="per-group" if group_size else "per-channel",
                           group_size=group_size or 64, method=method, act_order=act_order, percdamp=percdamp,
                           fp16_scales=True)
    if method in WA_METHODS:
        return SmoothQuantConfig(alpha, method == "smoothquant", wa_bits, wa_bits, act_granularity)
    raise ValueError(f"unknown language-model method {method!r}")


def method_of(config: OneShotConfig) -> str:
    if isinstance(config, SmoothQuantConfig):
        return "smoothquant" if config.smooth else "naive"
    return config.method


@dataclass(frozen=True, eq=False)
class LMResult:
    """A compressed copy of the language model and what the run measured."""

    lm: LanguageModel  # the new model (the input model is untouched)
    run: OneShotResult

    @property
    def config(self) -> OneShotConfig:
        return self.run.config

    @property
    def seconds(self) -> float:
        return self.run.seconds

    @property
    def steps(self) -> tuple[BlockStep, ...]:
        return self.run.steps

    @property
    def notes(self) -> tuple[str, ...]:
        return self.run.notes

    @property
    def device(self) -> str:
        return self.run.device

    def layer_errors(self) -> list[dict]:
        return self.run.layer_errors()

    def sparsity(self) -> float:
        """Fraction of zeros over all compressible linear weights."""
        family = family_of(self.lm.model)
        zeros = total = 0
        for layer in decoder_layers(self.lm.model):
            for module in layer_linears(family, layer).values():
                w = module.weight  # counting zeros needs no float32 copy in (out, in) layout
                zeros, total = zeros + int((w == 0).sum()), total + w.numel()
        return zeros / max(total, 1)

    def to_dict(self) -> dict:
        return {"config": {"kind": method_kind(self.config), **self.config.to_dict()}, "seconds": self.seconds,
                "device": self.device, "sparsity": self.sparsity(), "layer_errors": self.layer_errors(),
                "notes": list(self.notes)}


def method_kind(config: OneShotConfig) -> str:
    return {PruneConfig: "prune", QuantConfig: "quantize", SmoothQuantConfig: "smoothquant"}[type(config)]


def config_from_dict(data: dict) -> OneShotConfig:
    """The inverse of LMResult.to_dict()["config"] (a saved run back into a config)."""
    kinds = {"prune": PruneConfig, "quantize": QuantConfig, "smoothquant": SmoothQuantConfig}
    kind = data.get("kind")
    if kind not in kinds:
        raise ValueError(f"unknown config kind {kind!r}")
    return kinds[kind].from_dict(data)


def compress_lm(lm: LanguageModel, config: OneShotConfig, calibration: Tensor | None = None,
                device: str | torch.device = "cpu") -> Generator[BlockStep, None, LMResult]:
    """Compress a copy of `lm` decoder layer by decoder layer; yields a BlockStep per layer."""
    run = yield from compress(lm.model, config, calibration, DecoderLayers(), device)
    return LMResult(LanguageModel(run.model, lm.tokenizer, lm.info), run)


def fp16_size_bytes(lm: LanguageModel) -> int:
    """Bytes of every parameter as float16 (a tied embedding counted once): the baseline file."""
    return 2 * sum(p.numel() for p in lm.model.parameters())


def packed_tensors(result: LMResult) -> tuple[dict, dict[str, str]]:
    """What the packed file holds (quantized weights as codes, pruned ones as N:M or sparse values, the rest
    float16) and its metadata. GPT-2's Conv1D weights are stored as (out, in): the metadata lists them."""
    model = result.lm.model
    pruned = isinstance(result.config, PruneConfig)
    fp16_scales = getattr(result.config, "fp16_scales", True)
    linears = {f"{name}.weight": module for name, module in model.named_modules() if hasattr(module, "weight")}
    compressible = set()
    for block in DecoderLayers().blocks(model):
        compressible |= set(block.weight_names.values())
    tensors, transposed, seen = {}, [], set()
    for name, param in model.named_parameters():  # named_parameters() lists a tied tensor once
        if id(param) in seen:
            continue
        seen.add(id(param))
        module = linears.get(name)
        if name in result.run.qtensors:
            tensors[name] = packed_codes(result.run.qtensors[name], fp16_scales)
        elif pruned and name in compressible:
            w = get_weight(module).cpu()
            nm = result.config.nm
            tensors[name] = NMValues.from_dense(w, *nm) if nm and w.shape[1] % nm[1] == 0 else \
                SparseValues.from_dense(w)
        else:
            tensors[name] = raw_float(param, torch.float16)
            continue
        if module is not None and is_conv1d(module):
            transposed.append(name)
    metadata = {"model": result.lm.info.name, "config": json.dumps(result.to_dict()["config"]),
                "transposed": json.dumps(transposed)}
    return tensors, metadata


def pack(result: LMResult) -> bytes:
    """The packed file of a compressed language model (a safetensors file other tools open)."""
    return encode(*packed_tensors(result))


def packed_size_bytes(result: LMResult) -> int:
    """len(pack(result)), without packing a code."""
    return encoded_size(*packed_tensors(result))


def unpack(data: bytes, max_elements: int | None = None) -> dict[str, Tensor]:
    """The float32 state dict a language model's packed file stands for (Conv1D weights back in (in, out))."""
    state = decode_state(data, max_elements)
    listed = limits.parse_json(read_metadata(data).get("transposed", "[]").encode(), "packed file (transposed)")
    if not isinstance(listed, list) or len(set(map(repr, listed))) != len(listed) or any(
            not isinstance(name, str) or name not in state or state[name].dim() != 2 for name in listed):
        raise InputError("packed file: its list of transposed tensors names something other than distinct 2-D "
                         "tensors of the file")
    for name in listed:
        state[name] = state[name].t().contiguous()
    return state
