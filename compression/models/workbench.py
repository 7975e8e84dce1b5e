"""A private working copy of a model whose weights can be swapped in and evaluated fast (no deepcopy per try)."""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import Tensor

from compression.core.errors import InputError
from compression.metrics import Evaluation, evaluate
from compression.models.loading import LoadedModel


class Workbench:
    """Evaluate many variants of one model's weights; the original LoadedModel is never touched."""

    def __init__(self, model: LoadedModel):
        self.model = model
        self.base = model.weights()  # read-only references to the original weights
        self._copy = copy.deepcopy(model.module) if model.module is not None else None
        self._params = dict(self._copy.named_parameters()) if self._copy is not None else {}
        self._dirty: set[str] = set()

    def evaluate(self, weights: Mapping[str, Tensor] | None = None) -> Evaluation:
        """Held-out accuracy and loss with `weights` (a subset of the weight names) swapped in."""
        weights = weights or {}
        unknown = set(weights) - set(self.base)
        if unknown:
            raise InputError(f"not weights of this model: {', '.join(sorted(unknown))}")
        data = self.model.dataset
        if self._copy is None:
            return self.model.onnx.evaluate(data, weights)
        self._load(weights)
        return evaluate(self._copy, data.x_test, data.y_test)

    def module_with(self, weights: Mapping[str, Tensor] | None = None) -> torch.nn.Module:
        """The working copy with `weights` in place (valid until the next call); for latency or logits."""
        if self._copy is None:
            raise InputError("an ONNX model has no PyTorch module")
        self._load(weights or {})
        return self._copy

    @torch.no_grad()
    def _load(self, weights: Mapping[str, Tensor]) -> None:
        for name in self._dirty - set(weights):  # restore what an earlier call changed
            self._params[name].copy_(self.base[name])
        for name, tensor in weights.items():
            self._params[name].copy_(tensor)
        self._dirty = set(weights)


def with_weights(model: LoadedModel, weights: Mapping[str, Tensor], name: str | None = None) -> LoadedModel:
    """A new LoadedModel: a copy of `model` with `weights` replaced (the input model is unchanged)."""
    if model.onnx is not None:
        name = name or model.name
        return LoadedModel(name, "onnx", model.dataset, onnx=model.onnx.with_initializers(weights, name))
    if model.module is None:
        raise InputError("with_weights needs a PyTorch or ONNX model")
    module = copy.deepcopy(model.module)
    params = dict(module.named_parameters())
    with torch.no_grad():
        for key, tensor in weights.items():
            if key not in params:
                raise InputError(f"not a parameter of this model: {key}")
            params[key].copy_(tensor)
    return LoadedModel(name or model.name, model.source, model.dataset, module=module.eval(), arch=model.arch)
