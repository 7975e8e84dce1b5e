"""The walk that runs a quantized model on real kernels: every layer whose weight has a QTensor is swapped for an
Int4Linear or Int8Linear built from that QTensor's codes and grid, where the grid maps exactly; the others keep
their float weights and say why (compression.quantization.kernels)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch
from torch import nn

from compression.calibration import is_conv1d
from compression.quantization.kernels import kernel_for, kernel_module, module_bytes
from compression.quantization.tensors import QTensor


@dataclass(frozen=True)
class LayerKernel:
    """What one quantized layer runs on: a kernel, or None (kept float) with the reason."""

    name: str  # the weight's state-dict name
    kernel: str | None
    reason: str
    weight_bytes: int  # bytes of the layer's tensors after the swap (codes, scales, offsets, bias)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class KernelModel:
    """A copy of a model with its quantized layers on real kernels, and what each layer runs on."""

    model: nn.Module
    layers: tuple[LayerKernel, ...]

    def kernels(self) -> dict[str, int]:
        """How many layers run on each kernel ("float" for those kept)."""
        out: dict[str, int] = {}
        for layer in self.layers:
            out[layer.kernel or "float"] = out.get(layer.kernel or "float", 0) + 1
        return out

    def notes(self) -> list[str]:
        """One line per distinct reason a layer stayed float."""
        kept = {}
        for layer in self.layers:
            if layer.kernel is None:
                kept.setdefault(layer.reason, []).append(layer.name)
        return [f"{len(names)} layer(s) kept float ({names[0]}{', …' if len(names) > 1 else ''}): {reason}"
                for reason, names in kept.items()]


def _linear_like(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or is_conv1d(module)


def to_kernels(model: nn.Module, qtensors: Mapping[str, QTensor], kernel: str = "auto") -> KernelModel:
    """A copy of `model` (unchanged) whose layers named in `qtensors` run on `kernel` (auto: int4pack where the grid
    maps, else int8pack) wherever their grid maps exactly; a layer no kernel takes keeps its float weight."""
    targets = {}
    for name in qtensors:
        path = name.rsplit(".", 1)[0] if name.endswith(".weight") else None
        module = model.get_submodule(path) if path else None
        if module is not None and _linear_like(module):
            targets[path] = name
    # The copy skips the weights about to be replaced: a model of hundreds of MiB is not held twice over.
    memo = {id(model.get_submodule(path).weight): torch.empty(0) for path in targets}
    work = copy.deepcopy(model, memo)
    layers = []
    for path, name in targets.items():
        original, module = model.get_submodule(path), work.get_submodule(path)
        chosen, reason = kernel_for(qtensors[name], kernel)
        if chosen is None:
            # not replaced after all: the copy gets its own float weight back
            module.weight = nn.Parameter(original.weight.detach().clone(), requires_grad=False)
            layers.append(LayerKernel(name, None, reason, module_bytes(module)))
            continue
        new = kernel_module(qtensors[name], chosen, getattr(module, "bias", None))
        parent, _, child = path.rpartition(".")
        setattr(work.get_submodule(parent) if parent else work, child, new)
        layers.append(LayerKernel(name, chosen, reason, module_bytes(new)))
    return KernelModel(work.eval(), tuple(layers))
