"""Models: architectures, the zoo, safe loading of user files (weights, ONNX, .clab), facts and exports."""

from compression.models.architectures import ARCHITECTURES, MLP
from compression.models.export import dense_safetensors, onnx_bytes
from compression.models.facts import ModelFacts, describe
from compression.models.loading import (
    LoadedModel,
    custom_from_environment,
    load_clab,
    load_custom,
    load_custom_from_environment,
    load_onnx_with_data,
    load_weights,
    load_zoo,
)
from compression.models.workbench import Workbench, with_weights
from compression.models.zoo import ZOO, is_cached, train_zoo_model

__all__ = [
    "ARCHITECTURES",
    "custom_from_environment",
    "dense_safetensors",
    "describe",
    "is_cached",
    "load_clab",
    "load_custom",
    "load_custom_from_environment",
    "load_onnx_with_data",
    "load_weights",
    "load_zoo",
    "LoadedModel",
    "MLP",
    "ModelFacts",
    "onnx_bytes",
    "train_zoo_model",
    "with_weights",
    "Workbench",
    "ZOO",
]
