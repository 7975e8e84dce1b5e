"""Where the compressible parts of a decoder-only transformer are: its decoder layers, their linears and norms.

Two families are supported: Llama-like (Llama, Mistral, Qwen2; SmolLM2 is a Llama) and GPT-2, whose `Conv1D`
stores weights transposed, as (in, out). Everything else reads weights through `get_weight` as (out, in).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from compression.core.errors import InputError


@dataclass(frozen=True)
class Family:
    """How one architecture family names its parts, relative to a decoder layer."""

    name: str
    layers_path: str  # the ModuleList of decoder layers, from the CausalLM
    roles: tuple[tuple[str, str], ...]  # (role, path in a layer), in forward order
    norm_groups: tuple[tuple[str, tuple[str, ...]], ...]  # (norm path, roles it feeds)
    linear_groups: tuple[tuple[str, tuple[str, ...]], ...]  # (role whose output rows feed, roles fed linearly)

    def role_paths(self) -> dict[str, str]:
        return dict(self.roles)


LLAMA = Family(
    name="llama",
    layers_path="model.layers",
    roles=(("q", "self_attn.q_proj"), ("k", "self_attn.k_proj"), ("v", "self_attn.v_proj"),
           ("o", "self_attn.o_proj"), ("gate", "mlp.gate_proj"), ("up", "mlp.up_proj"), ("down", "mlp.down_proj")),
    norm_groups=(("input_layernorm", ("q", "k", "v")), ("post_attention_layernorm", ("gate", "up"))),
    # down(act(gate) * up): scaling up's output rows by 1/s scales down's inputs by 1/s exactly
    linear_groups=(("up", ("down",)), ("v", ("o",))),
)
GPT2 = Family(
    name="gpt2",
    layers_path="transformer.h",
    roles=(("qkv", "attn.c_attn"), ("o", "attn.c_proj"), ("up", "mlp.c_fc"), ("down", "mlp.c_proj")),
    norm_groups=(("ln_1", ("qkv",)), ("ln_2", ("up",))),
    linear_groups=(),  # c_fc -> GELU -> c_proj: no exact way to move a scale through the GELU
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


def linear_names(model: nn.Module) -> dict[tuple[int, str], str]:
    """(layer index, role) -> the module's full name in the model, e.g. (0, "q") -> model.layers.0.self_attn.q_proj."""
    family = family_of(model)
    count = len(decoder_layers(model))
    return {(i, role): f"{family.layers_path}.{i}.{path}" for i in range(count) for role, path in family.roles}


def is_conv1d(module: nn.Module) -> bool:
    # transformers' GPT-2 Conv1D: y = x @ weight + bias with weight (in, out)
    return type(module).__name__ == "Conv1D"


def get_weight(module: nn.Module) -> Tensor:
    """A float32 copy of the weight as (out, in), whatever the module stores."""
    w = module.weight.detach()
    return (w.t() if is_conv1d(module) else w).float().clone()


@torch.no_grad()
def set_weight(module: nn.Module, weight: Tensor) -> None:
    """Write an (out, in) weight back in the module's own layout (only on a model this code owns)."""
    module.weight.copy_(weight.t() if is_conv1d(module) else weight)


@torch.no_grad()
def scale_norm(norm: nn.Module, scale: Tensor) -> None:
    """Divide a norm's outputs by `scale` (per channel): weight and, for LayerNorm, bias."""
    norm.weight.div_(scale.to(norm.weight.dtype))
    if getattr(norm, "bias", None) is not None:
        norm.bias.div_(scale.to(norm.bias.dtype))


@torch.no_grad()
def scale_output_rows(module: nn.Module, scale: Tensor) -> None:
    """Divide a linear's output channels by `scale`."""
    set_weight(module, get_weight(module) / scale[:, None])
    if getattr(module, "bias", None) is not None:
        module.bias.div_(scale)
