"""Structured pruning: remove whole neurons, conv filters or attention heads and rebuild a smaller model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from compression.core.errors import InputError
from compression.metrics import state_dict_of
from compression.models.architectures import (
    MLP,
    SmallCNN,
    TinyTransformer,
    cnn_from_state_dict,
    get_architecture,
    mlp_from_state_dict,
)
from compression.models.loading import LoadedModel
from compression.pruning.config import PruneConfig
from compression.pruning.result import PruneResult, measure_result


@dataclass(frozen=True)
class UnitGroup:
    """Units (neurons, filters, heads) produced by some rows and read by some columns of the next layer.

    `producers`: weights whose dim 0 holds `block` rows per unit (head_dim rows per head);
    `consumers`: weights whose dim 1 holds `block` columns per unit (16 flattened pixels per conv2 filter).
    """

    name: str
    units: int
    producers: tuple[tuple[str, int], ...]
    biases: tuple[str, ...]
    consumers: tuple[tuple[str, int], ...]


def unit_groups(module: nn.Module) -> list[UnitGroup]:
    """The removable units of a zoo architecture (MLP, SmallCNN, TinyTransformer)."""
    if isinstance(module, MLP):
        fcs = [n for n, m in module.named_children() if isinstance(m, nn.Linear)]
        return [_linear_group(module, a, b) for a, b in zip(fcs[:-1], fcs[1:])]
    if isinstance(module, SmallCNN):
        pixels = (module.image_size // 2) ** 2  # fc1 reads each conv2 channel as `pixels` flattened columns
        return [
            UnitGroup("conv1", module.conv1.out_channels, (("conv1.weight", 1),), ("conv1.bias",),
                      (("conv2.weight", 1),)),
            UnitGroup("conv2", module.conv2.out_channels, (("conv2.weight", 1),), ("conv2.bias",),
                      (("fc1.weight", pixels),)),
            _linear_group(module, "fc1", "fc2"),
        ]
    if isinstance(module, TinyTransformer):
        a, hd = module.attn, module.attn.head_dim
        qkv = ("attn.q_proj", "attn.k_proj", "attn.v_proj")
        return [
            UnitGroup("attn", a.heads, tuple((f"{p}.weight", hd) for p in qkv), tuple(f"{p}.bias" for p in qkv),
                      (("attn.out_proj.weight", hd),)),
            _linear_group(module, "ff1", "ff2"),
        ]
    raise InputError(f"structured pruning knows the zoo architectures (MLP, SmallCNN, TinyTransformer), "
                     f"not {type(module).__name__}; use magnitude or N:M pruning")


def has_unit_groups(module: nn.Module) -> bool:
    """Whether structured pruning knows this architecture."""
    return isinstance(module, (MLP, SmallCNN, TinyTransformer))


def _linear_group(module: nn.Module, producer: str, consumer: str) -> UnitGroup:
    units = module.get_submodule(producer).out_features
    return UnitGroup(producer, units, ((f"{producer}.weight", 1),), (f"{producer}.bias",),
                     ((f"{consumer}.weight", 1),))


def unit_scores(state: Mapping[str, Tensor], group: UnitGroup, norm: int = 1) -> Tensor:
    """Ln norm of each unit's producing weights (its rows in every producer), shape (units,)."""
    parts = [state[name].reshape(group.units, -1) for name, _ in group.producers]  # block rows per unit
    return torch.linalg.vector_norm(torch.cat(parts, dim=1), ord=norm, dim=1)


def keep_units(scores: Tensor, amount: float) -> Tensor:
    """Sorted indices of the units kept: the largest norms, as torch.nn.utils.prune.ln_structured keeps them.

    At least one unit stays, so the rebuilt model still has a path from input to output.
    """
    units = scores.numel()
    keep = max(1, units - round(amount * units))
    return torch.topk(scores, k=keep, largest=True).indices.sort().values


def _chosen(groups: list[UnitGroup], exclude: tuple[str, ...], layers: set[str]) -> list[UnitGroup]:
    """Groups not excluded; excluding a layer that is not a group (e.g. the output layer) changes nothing."""
    names = {g.name for g in groups}
    layer_names = {g.name: {g.name} | {p.rsplit(".", 1)[0] for p, _ in g.producers} | {p for p, _ in g.producers}
                   for g in groups}
    known = set().union(*layer_names.values()) if layer_names else set()
    unknown = [e for e in exclude if e not in known and e not in names and e not in layers]
    if unknown:
        raise InputError(f"cannot exclude {', '.join(unknown)}: structured groups are {', '.join(names)}")
    return [g for g in groups if not layer_names[g.name] & set(exclude)]


def plan(module: nn.Module, config: PruneConfig) -> dict[str, Tensor]:
    """Indices of the units each group keeps (excluded groups keep all)."""
    state = dict(module.state_dict())
    groups = unit_groups(module)
    layers = set(state) | {k.rsplit(".", 1)[0] for k in state}
    chosen = {g.name for g in _chosen(groups, config.exclude, layers)}
    if not chosen:
        raise InputError("there is no layer left to prune: every layer is excluded")
    per_layer = dict(config.layer_amounts)
    return {g.name: keep_units(unit_scores(state, g, config.norm), per_layer.get(g.name, config.amount))
            if g.name in chosen else torch.arange(g.units) for g in groups}


def unit_masks(module: nn.Module, keep: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Masks on the original shapes that zero removed units' rows and the next layer's columns.

    Zeroing both sides makes a removed unit contribute nothing (its bias is cut off too), so evaluating
    the masked model gives exactly the rebuilt model's outputs.
    """
    state = dict(module.state_dict())
    masks: dict[str, Tensor] = {}
    for g in unit_groups(module):
        alive = torch.zeros(g.units)
        alive[keep[g.name]] = 1.0
        for name, block in g.producers:
            m = masks.setdefault(name, torch.ones_like(state[name]))
            m.mul_(alive.repeat_interleave(block).view(-1, *([1] * (m.dim() - 1))))
        for name, block in g.consumers:
            m = masks.setdefault(name, torch.ones_like(state[name]))
            m.mul_(alive.repeat_interleave(block).view(1, -1, *([1] * (m.dim() - 2))))
    return masks


def shrink(module: nn.Module, keep: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A new state dict (no storage shared with `module`) with only the kept units: producers' rows and biases
    and consumers' columns cut out."""
    state = {k: v.clone() for k, v in state_dict_of(module).items()}
    for g in unit_groups(module):
        index = keep[g.name]
        for name, block in g.producers:
            state[name] = _take(state[name], index, block, dim=0)
        for name in g.biases:
            block = state[name].numel() // g.units
            state[name] = _take(state[name], index, block, dim=0)
        for name, block in g.consumers:
            state[name] = _take(state[name], index, block, dim=1)
    return state


def _take(t: Tensor, units: Tensor, block: int, dim: int) -> Tensor:
    rows = (units[:, None] * block + torch.arange(block)).reshape(-1)  # unit u owns rows u*block..u*block+block-1
    return t.index_select(dim, rows).contiguous()


def rebuild(model: LoadedModel, state: Mapping[str, Tensor]) -> nn.Module:
    """A new module of the model's class with the (shrunk) shapes of `state`."""
    original = _require_module(model)
    with torch.device("meta"):  # no random init of weights that load_state_dict replaces anyway
        module = _empty_like(original, state)
    module.load_state_dict(state, assign=True)
    return module.eval()


def _empty_like(original: nn.Module, state: Mapping[str, Tensor]) -> nn.Module:
    if isinstance(original, MLP):  # any input/output size, not only the zoo's
        return mlp_from_state_dict(state)
    if isinstance(original, SmallCNN):
        return cnn_from_state_dict(state, original.image_size)
    return get_architecture("transformer").from_state_dict(state)


def dead_units(module: nn.Module) -> dict[str, Tensor]:
    """Units whose every outgoing weight is zero: removing them changes nothing (unstructured pruning's bonus)."""
    state = dict(module.state_dict())
    keep = {}
    for g in unit_groups(module):
        alive = torch.zeros(g.units, dtype=torch.bool)
        for name, block in g.consumers:
            cols = state[name].movedim(1, 0).reshape(g.units, -1)  # (units, block * rest)
            alive |= cols.ne(0).any(dim=1)
        index = alive.nonzero().flatten()
        keep[g.name] = index if index.numel() else torch.tensor([0])
    return keep


def _require_module(model: LoadedModel) -> nn.Module:
    if model.module is None:
        raise InputError("structured pruning needs a PyTorch model (an ONNX graph would have to be rewritten)")
    return model.module


def prune_structured(model: LoadedModel, config: PruneConfig) -> PruneResult:
    """Remove the lowest-norm units and rebuild the model physically smaller; `model` is unchanged."""
    module = _require_module(model)
    keep = plan(module, config)
    masks = unit_masks(module, keep)
    new_module = rebuild(model, shrink(module, keep))
    new = LoadedModel(f"{model.name} (structured)", model.source, model.dataset, module=new_module, arch=model.arch)
    return measure_result(model, new, config, masks, model.weights())
