"""A model's weights as portable files: dense safetensors and ONNX."""

from __future__ import annotations

import io
import warnings

import torch

from compression.core.errors import InputError
from compression.metrics import safetensors_bytes, state_dict_of
from compression.models.loading import LoadedModel


def dense_safetensors(model: LoadedModel) -> bytes:
    """The dense-equivalent weights (zeros and shared values written out as fp32) under export's names."""
    if model.module is None:
        raise InputError("an ONNX model's weights are exported from the Model page")
    return safetensors_bytes(state_dict_of(model.module))


def onnx_bytes(model: LoadedModel) -> bytes:
    """The model as ONNX (dense fp32: ONNX has no portable sparse or k-means weight format)."""
    if model.module is None:
        raise InputError("this model is already ONNX")
    buffer = io.BytesIO()
    example = model.dataset.x_test[:1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter is deprecated but needs no extra package
        torch.onnx.export(model.module, (example,), buffer, dynamo=False, input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
    return buffer.getvalue()
