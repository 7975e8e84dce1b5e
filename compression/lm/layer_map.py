"""The layer map of decoder-only transformers, given to the techniques as data: which decoder layers there are,
which linears each holds, which norm feeds which linears, and how calibration runs one layer at a time.

Two families: Llama-like (Llama, Mistral, Qwen2; SmolLM2 is a Llama) and GPT-2, whose `Conv1D` stores weights
transposed; calibration.get_weight reads either as (out, in).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from compression.calibration import Block
from compression.core.errors import InputError
from compression.lm.decoder import LayerCall, capture_layer_call, linear_inputs


@dataclass(frozen=True)
class Family:
    """How one architecture family names its parts, relative to a decoder layer."""

    name: str
    layers_path: str  # the ModuleList of decoder layers, from the CausalLM
    roles: tuple[tuple[str, str], ...]  # (role, path in a layer), in forward order
    norm_groups: tuple[tuple[str, tuple[str, ...]], ...]  # (norm path, roles it feeds)
    linear_groups: tuple[tuple[str, tuple[str, ...]], ...]  # (role whose output rows feed, roles fed linearly)
    no_clip: tuple[str, ...] = ()  # roles whose outputs feed attention scores (AWQ leaves them unclipped)


LLAMA = Family(
    name="llama",
    layers_path="model.layers",
    roles=(("q", "self_attn.q_proj"), ("k", "self_attn.k_proj"), ("v", "self_attn.v_proj"),
           ("o", "self_attn.o_proj"), ("gate", "mlp.gate_proj"), ("up", "mlp.up_proj"), ("down", "mlp.down_proj")),
    norm_groups=(("input_layernorm", ("q", "k", "v")), ("post_attention_layernorm", ("gate", "up"))),
    # down(act(gate) * up): scaling up's output rows by 1/s scales down's inputs by 1/s exactly
    linear_groups=(("up", ("down",)), ("v", ("o",))),
    no_clip=("q", "k"),
)
GPT2 = Family(
    name="gpt2",
    layers_path="transformer.h",
    roles=(("qkv", "attn.c_attn"), ("o", "attn.c_proj"), ("up", "mlp.c_fc"), ("down", "mlp.c_proj")),
    norm_groups=(("ln_1", ("qkv",)), ("ln_2", ("up",))),
    linear_groups=(),  # c_fc -> GELU -> c_proj: no exact way to move a scale through the GELU
    no_clip=("qkv",),
)
FAMILIES = {"llama": LLAMA, "mistral": LLAMA, "qwen2": LLAMA, "gpt2": GPT2}


def family_of(model: nn.Module) -> Family:
    """The family of a Hugging Face CausalLM, or InputError naming the supported ones."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in FAMILIES:
        raise InputError(f"unsupported architecture {model_type!r}; supported: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[model_type]


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    return model.get_submodule(family_of(model).layers_path)


def layer_linears(family: Family, layer: nn.Module) -> dict[str, nn.Module]:
    """role -> linear module of one decoder layer."""
    return {role: layer.get_submodule(path) for role, path in family.roles}


def layer_roles(model: nn.Module) -> tuple[str, ...]:
    """The names of a decoder layer's compressible linears, in forward order (q, k, v, o, gate, up, down)."""
    return tuple(role for role, _ in family_of(model).roles)


class DecoderLayers:
    """The BlockMap of a causal LM: one block per decoder layer, fed the hidden states the layers before it
    produce (the token ids go through the embeddings once)."""

    def blocks(self, model: nn.Module) -> list[Block]:
        family = family_of(model)
        out = []
        for index, layer in enumerate(decoder_layers(model)):
            prefix = f"{family.layers_path}.{index}"
            out.append(Block(
                name=f"layer {index}", linears=layer_linears(family, layer),
                norm_groups=tuple((layer.get_submodule(norm), roles) for norm, roles in family.norm_groups),
                linear_groups=family.linear_groups, module=layer,
                weight_names={role: f"{prefix}.{path}.weight" for role, path in family.roles},
                no_clip=family.no_clip))
        return out

    def start(self, model: nn.Module, inputs: Tensor) -> tuple[LayerCall, Tensor]:
        call = capture_layer_call(model, decoder_layers(model)[0], inputs.to(next(model.parameters()).device))
        return call, call.hidden

    def block_inputs(self, model: nn.Module, block: Block, state: tuple[LayerCall, Tensor]) -> dict[str, Tensor]:
        call, hidden = state
        return linear_inputs(block.module, block.linears, call, hidden)

    def advance(self, model: nn.Module, block: Block, state: tuple[LayerCall, Tensor]) -> tuple[LayerCall, Tensor]:
        call, hidden = state
        return call, call.run(block.module, hidden)
