"""Every way a model gets into the app: zoo, uploaded weights for a zoo architecture, ONNX, or module:function."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from compression.core.errors import InputError
from compression.core.settings import ARCH_DATA_ENV, ARCH_ENV, ARCH_WEIGHTS_ENV
from compression.data import Dataset, load_dataset, load_npz
from compression.formats import clab, limits
from compression.metrics import Evaluation, evaluate, saved_size_bytes
from compression.models.architectures import WEIGHT_LAYERS, get_architecture
from compression.models.onnx import OnnxModel, load_onnx
from compression.models.safe_load import build_and_load, load_into, read_state_dict
from compression.models.zoo import ZOO, load_zoo_module


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model with the data it is judged on. `module` may be shared by all sessions: never mutate it."""

    name: str
    source: str  # "zoo" | "upload" | "onnx" | "custom"
    dataset: Dataset
    module: nn.Module | None = None
    onnx: OnnxModel | None = None
    arch: str | None = None  # the zoo architecture the module is built from, when it is one

    def weights(self) -> dict[str, Tensor]:
        """The weight tensors compression acts on (Linear/Conv/attention projections), by state-dict name."""
        if self.onnx is not None:
            return self.onnx.weights()
        return prunable_weights(self.module)

    def file_size_bytes(self) -> int:
        """The model's real file: the .onnx itself, or a torch.save of its state dict."""
        return len(self.onnx.raw) if self.onnx is not None else saved_size_bytes(self.module)

    def evaluate(self) -> Evaluation:
        """Accuracy and loss on the held-out split."""
        if self.onnx is not None:
            return self.onnx.evaluate(self.dataset)
        return evaluate(self.module, self.dataset.x_test, self.dataset.y_test)


def prunable_weights(model: nn.Module) -> dict[str, Tensor]:
    """Weights of Linear and Conv layers; biases, norms and embeddings of position are left alone."""
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, WEIGHT_LAYERS):
            out[f"{name}.weight" if name else "weight"] = module.weight.detach()
    return out


def load_zoo(name: str) -> LoadedModel:
    """A trained zoo model (trains on first use) with its built-in dataset."""
    if name not in ZOO:
        raise InputError(f"unknown zoo model {name!r}; choose one of {', '.join(ZOO)}")
    arch = get_architecture(name)
    return LoadedModel(name, "zoo", load_dataset(arch.dataset), module=load_zoo_module(name), arch=name)


def load_weights(arch_name: str, data: bytes, filename: str) -> LoadedModel:
    """User weights (safetensors or weights-only state dict) for a zoo architecture; shapes may be shrunk.

    A .clab file (our compressed format) names its own architecture, so `arch_name` is not needed for it.
    """
    limits.check_upload_size(data, filename)
    if filename.lower().endswith(".clab"):
        return load_clab(data, filename)
    arch = get_architecture(arch_name)
    state = read_state_dict(data, filename)
    model = build_and_load(arch.from_state_dict, state, filename)
    return LoadedModel(f"{filename} ({arch_name})", "upload", load_dataset(arch.dataset), module=model,
                       arch=arch_name)


def load_onnx_with_data(model_bytes: bytes, model_name: str, npz_bytes: bytes, npz_name: str) -> LoadedModel:
    """An ONNX model with its own evaluation data (.npz with x and y)."""
    limits.check_upload_size(model_bytes, model_name)
    limits.check_upload_size(npz_bytes, npz_name)
    onnx_model = load_onnx(model_bytes, model_name)
    data = load_npz(npz_bytes, name=npz_name, classes=onnx_model.num_outputs)
    onnx_model.check_data(data)
    return LoadedModel(model_name, "onnx", data, onnx=onnx_model)


def load_custom(factory: str, weights_path: str | None, data: str) -> LoadedModel:
    """A user's own architecture from `module:function` (server config or CLI only), its weights and data.

    `data` is a built-in dataset name or a path to an .npz with x and y.
    """
    model = build_from_factory(factory)
    if weights_path:
        path = Path(weights_path)
        if not path.is_file():
            raise InputError(f"weights file {weights_path} does not exist")
        model = load_into(model, read_state_dict(path.read_bytes(), path.name), path.name)
    dataset = _custom_dataset(data)
    logits = try_forward(model, dataset, factory)
    if logits.ndim != 2 or logits.shape[1] < dataset.num_classes:
        raise InputError(f"{factory} returns shape {tuple(logits.shape)}; expected (N, {dataset.num_classes})")
    return LoadedModel(factory, "custom", dataset, module=model.eval())


def build_from_factory(factory: str) -> nn.Module:
    """Call `package.module:function` (no arguments) and check it returns an nn.Module."""
    module_name, _, func_name = factory.partition(":")
    if not module_name or not func_name:
        raise InputError(f"architecture must be given as module:function, got {factory!r}")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"cannot import {factory}: {exc}") from exc
    model = func()
    if not isinstance(model, nn.Module):
        raise InputError(f"{factory} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def custom_from_environment() -> str | None:
    """The server-side `module:function` named in $COMPRESSION_LAB_ARCH, if any."""
    return os.environ.get(ARCH_ENV) or None


def load_custom_from_environment() -> LoadedModel:
    """The server's own architecture with the weights and data its environment names."""
    factory = custom_from_environment()
    if factory is None:
        raise InputError(f"no custom architecture: set {ARCH_ENV}=package.module:function before starting the app")
    return load_custom(factory, os.environ.get(ARCH_WEIGHTS_ENV), os.environ.get(ARCH_DATA_ENV, "digits"))


def _custom_dataset(data: str) -> Dataset:
    if data.endswith(".npz"):
        path = Path(data)
        if not path.is_file():
            raise InputError(f"data file {data} does not exist")
        return load_npz(path.read_bytes(), name=path.name)
    return load_dataset(data)


def load_clab(data: bytes, name: str = "model.clab") -> LoadedModel:
    """Decode a .clab file into a working model of its architecture, with that architecture's dataset."""
    decoded = clab.decode(data)
    arch = get_architecture(decoded.arch)
    module = build_and_load(arch.from_state_dict, decoded.state, name)
    return LoadedModel(name, "upload", load_dataset(arch.dataset), module=module, arch=decoded.arch)


def try_forward(module: nn.Module, dataset: Dataset, who: str) -> Tensor:
    """`module`'s output on two held-out samples, or an InputError saying why it cannot read this data."""
    try:
        with torch.no_grad():
            return module.eval()(dataset.x_test[:2])
    except Exception as exc:  # any failure of a user's module is a message, not a crash
        raise InputError(f"{who} cannot read {dataset.name} samples of shape {dataset.input_shape}: "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
