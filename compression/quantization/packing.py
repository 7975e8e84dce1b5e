"""Quantized tensors into the one packed file (compression.formats.packed) and back."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from compression.formats.packed import AffineCodes, BinaryCodes, decode_state, encode
from compression.quantization.tensors import QTensor


def packed_codes(qtensor: QTensor, fp16_scales: bool = False) -> AffineCodes | BinaryCodes:
    """What the file stores for one quantized tensor: its codes bit-packed at its bits, plus its grid."""
    qp = qtensor.qparams
    scale = qp.scale.half() if fp16_scales else qp.scale.float()
    if qtensor.kind == "binary":
        return BinaryCodes(qtensor.codes, scale, qp.axis)
    group = qp.group_size
    if group is not None:
        columns = qtensor.codes[0].numel() if qtensor.codes.ndim else 1
        group = min(group, max(columns, 1))  # a group wider than the row is the whole row
    return AffineCodes(qtensor.codes, qtensor.bits, qp.quant_min, qp.quant_max, scale, qp.zero_point, qp.axis, group)


def save_packed(state: Mapping[str, Tensor | QTensor], fp16_scales: bool = False,
                metadata: Mapping[str, str] | None = None) -> bytes:
    """The bytes of a packed file holding `state`: quantized tensors bit-packed, the rest as they are."""
    return encode({name: packed_codes(v, fp16_scales) if isinstance(v, QTensor) else v for name, v in state.items()},
                  metadata)


def load_packed(data: bytes) -> dict[str, Tensor]:
    """Decode a packed file into a state dict of float32 (dequantized) and raw tensors."""
    return decode_state(data)


def raw_float(t: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """A float tensor as the file stores it (float32 for the image models, float16 for language models)."""
    return t.detach().cpu().to(dtype).contiguous() if t.is_floating_point() else t.detach().cpu().contiguous()
