"""Quantization for any model: round-to-nearest per tensor, channel or group, GPTQ and AWQ (calibrated, layer by
layer), SmoothQuant W·A·, activations (static PTQ), QAT, real int8 through a swappable backend, and real int4/int8
weight-only kernels that run the codes of any of these grids where they map (kernels.py, deploy.py)."""

from compression.quantization.activations import OBSERVERS, ActivationQuantConfig, quantize_activations
from compression.quantization.config import GRANULARITIES, METHODS, RANGES, SCHEMES, QuantConfig
from compression.quantization.deploy import KernelModel, LayerKernel, to_kernels
from compression.quantization.hooks import InputFakeQuant
from compression.quantization.int8 import (
    LARGE_MLP,
    MODES,
    Int8Config,
    Int8Measure,
    TorchAOQuantization,
    deploy_int8,
    large_mlp_int8,
)
from compression.quantization.kernels import (
    INT4_GROUPS,
    KERNELS,
    Int4Linear,
    Int8Embedding,
    Int8Linear,
    int4_refusal,
    int8_refusal,
    kernel_for,
)
from compression.quantization.oneshot import quantize_block, smoothquant_block
from compression.quantization.packing import load_packed, packed_codes, raw_float, save_packed
from compression.quantization.primitives import QParams
from compression.quantization.ptq import (
    CALIBRATION_SAMPLES,
    QuantResult,
    accuracy_vs_bits,
    layer_view,
    propose_bits,
    quantize,
    sensitivity,
    worked_example,
)
from compression.quantization.qat_training import QATConfig, qat, qat_with_control
from compression.quantization.smoothquant import ACT_GRANULARITIES, SmoothQuantConfig
from compression.quantization.speed import SpeedComparison, compare_speed
from compression.quantization.tensors import QTensor

__all__ = [
    "ACT_GRANULARITIES",
    "accuracy_vs_bits",
    "ActivationQuantConfig",
    "CALIBRATION_SAMPLES",
    "compare_speed",
    "deploy_int8",
    "GRANULARITIES",
    "InputFakeQuant",
    "INT4_GROUPS",
    "Int4Linear",
    "int4_refusal",
    "Int8Embedding",
    "Int8Linear",
    "int8_refusal",
    "kernel_for",
    "KernelModel",
    "KERNELS",
    "LayerKernel",
    "to_kernels",
    "Int8Config",
    "Int8Measure",
    "LARGE_MLP",
    "large_mlp_int8",
    "layer_view",
    "load_packed",
    "METHODS",
    "MODES",
    "OBSERVERS",
    "packed_codes",
    "QParams",
    "qat",
    "qat_with_control",
    "QATConfig",
    "QTensor",
    "propose_bits",
    "quantize",
    "quantize_activations",
    "quantize_block",
    "QuantConfig",
    "QuantResult",
    "RANGES",
    "raw_float",
    "save_packed",
    "SCHEMES",
    "sensitivity",
    "smoothquant_block",
    "SmoothQuantConfig",
    "SpeedComparison",
    "TorchAOQuantization",
    "worked_example",
]
