"""Real low-bit matrix multiplies on the CPU: a linear layer whose weights lie on a grid, run by torch's own packed
int4 and int8 kernels from the run's codes and grids, never rounded again.

- `Int4Linear`: torch.ops.aten._weight_int4pack_mm_for_cpu. The kernel reads 4-bit codes u in [0, 15] with one
  (scale s, offset m) pair per group of 32, 64, 128 or 256 inputs of each output row: ŵ = (u − 8)·s + m. A grid
  ŵ = (q − z)·s with codes q in [0, 15] is that form exactly: u = q, m = (8 − z)·s (asymmetric grids of up to 4 bits
  hold q in [0, 15]; a grid of fewer bits, or a symmetric one, takes u = q + t per group with t chosen so that
  m = (8 − z − t)·s is as small as the code range allows, often 0). A per-channel or per-tensor grid is a group grid
  whose groups share one (s, m).
- `Int8Linear`: torch.ops.aten._weight_int8pack_mm: int8 codes c with one scale per output row, ŵ = c·s. A grid of
  up to 8 bits per channel (or per tensor) maps as c = q − o with a per-row offset o, the zero point z itself
  wherever q − z fits int8 (every grid of up to 7 bits, symmetric 8-bit ones), else the nearest value that fits:
  ŵ = (q − z)·s = c·s + (o − z)·s, the second term added as (Σx)·(o − z)·s (None when o = z on every row).

Both kernels are fast only with bfloat16 activations, scales and offsets on this CPU (float32 activations take a
generic path 30 times slower, float16 ones slower still; measured in bench/lmspeed.py), so a layer casts its input
to bfloat16 and its output back. The codes are the run's; a scale rounded to bfloat16 keeps 8 significant bits
(relative change at most 2⁻⁹ of each weight); the agreement with the float model is measured, not assumed.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from compression.quantization.primitives import QParams
from compression.quantization.tensors import QTensor

INT4_GROUPS = (32, 64, 128, 256)  # the group sizes the int4pack kernel accepts
KERNELS = ("int4pack", "int8pack")
COMPUTE_DTYPE = torch.bfloat16


def _affine(qtensor: QTensor) -> str | None:
    """Why a QTensor is no 2-D affine grid (None when it is)."""
    if qtensor.kind != "affine":
        return f"{qtensor.kind} codes have no affine grid"
    if qtensor.codes.dim() != 2:
        return f"a {qtensor.codes.dim()}-D weight is not a linear layer's matrix"
    return None


def _per_row(qp: QParams, rows: int) -> tuple[Tensor, Tensor] | None:
    """(scale, zero) as (rows, 1) when the grid gives each output row one pair (per channel or per tensor)."""
    if qp.group_size is not None:
        return None
    if qp.axis is None and qp.scale.dim() == 0:
        return qp.scale.expand(rows, 1), qp.zero_point.expand(rows, 1)
    if qp.axis == 0:
        return qp.scale.reshape(rows, 1), qp.zero_point.reshape(rows, 1)
    return None


def int4_group(qtensor: QTensor) -> int | None:
    """The int4pack group size a QTensor runs at, or None when its grid cannot map onto the kernel."""
    return None if int4_refusal(qtensor) else _int4_group(qtensor)


def _int4_group(qtensor: QTensor) -> int | None:
    rows, columns = qtensor.codes.shape
    group = qtensor.qparams.group_size
    if group is not None:
        return group if group in INT4_GROUPS and columns % group == 0 else None
    return next((g for g in reversed(INT4_GROUPS) if columns % g == 0), None)  # one (s, m) repeated over groups


def int4_refusal(qtensor: QTensor) -> str | None:
    """Why a QTensor cannot run on the int4pack kernel exactly (None: it can)."""
    reason = _affine(qtensor)
    if reason:
        return reason
    qp = qtensor.qparams
    rows, columns = qtensor.codes.shape
    if qp.quant_max - qp.quant_min > 15 or not (0 <= qp.quant_min and qp.quant_max <= 15 or
                                                 -8 <= qp.quant_min and qp.quant_max <= 7):
        return f"codes in [{qp.quant_min}, {qp.quant_max}] do not fit 4 bits"
    if rows % 16:
        return f"{rows} output rows (the kernel packs rows in sixteens)"
    if qp.group_size is not None and (qp.group_size not in INT4_GROUPS or columns % qp.group_size):
        return (f"groups of {qp.group_size} over {columns} inputs (the kernel takes groups of "
                f"{', '.join(map(str, INT4_GROUPS))} that divide the row)")
    if qp.group_size is None and _per_row(qp, rows) is None:
        return "a grid along another axis than the output rows"
    if qp.group_size is None and _int4_group(qtensor) is None:
        return f"{columns} inputs are no multiple of 32"
    return None


def int8_refusal(qtensor: QTensor) -> str | None:
    """Why a QTensor cannot run on the int8pack kernel exactly (None: it can)."""
    reason = _affine(qtensor)
    if reason:
        return reason
    qp = qtensor.qparams
    if qp.quant_max - qp.quant_min > 255:
        return f"codes in [{qp.quant_min}, {qp.quant_max}] do not fit 8 bits"
    if _per_row(qp, qtensor.codes.shape[0]) is None:
        return ("one scale per group of inputs (the int8 kernel has one scale per output row)"
                if qp.group_size is not None else "a grid along another axis than the output rows")
    return None


def kernel_for(qtensor: QTensor, kernel: str = "auto") -> tuple[str | None, str]:
    """(the kernel a QTensor runs on, or None, and why): `auto` takes int4pack where the grid maps, else int8pack."""
    if kernel not in ("auto", *KERNELS):
        raise ValueError(f"kernel must be auto or one of {', '.join(KERNELS)}, got {kernel!r}")
    refusals = {"int4pack": int4_refusal(qtensor), "int8pack": int8_refusal(qtensor)}
    for name in (KERNELS if kernel == "auto" else (kernel,)):
        if refusals[name] is None:
            return name, f"{qtensor.bits}-bit grid mapped exactly"
    tried = KERNELS if kernel == "auto" else (kernel,)
    return None, "; ".join(f"{name}: {refusals[name]}" for name in tried)


class Int4Linear(nn.Module):
    """y = x·Ŵᵀ + b on torch's int4pack CPU kernel; Ŵ = (u − 8)·s + m per group (see the module's docstring)."""

    def __init__(self, packed: Tensor, scales_and_offsets: Tensor, group_size: int, in_features: int,
                 out_features: int, bias: Tensor | None = None):
        super().__init__()
        self.in_features, self.out_features, self.group_size = in_features, out_features, group_size
        self.register_buffer("packed", packed)  # (out, in / 2) uint8: two codes a byte, in the kernel's tiling
        self.register_buffer("scales_and_offsets", scales_and_offsets)  # (in / group, out, 2) bfloat16
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())

    @classmethod
    def from_qtensor(cls, qtensor: QTensor, bias: Tensor | None = None) -> Int4Linear:
        reason = int4_refusal(qtensor)
        if reason:
            raise ValueError(f"this grid cannot run on the int4pack kernel: {reason}")
        qp = qtensor.qparams
        rows, columns = qtensor.codes.shape
        group = _int4_group(qtensor)
        if qp.group_size is None:  # one pair per row, repeated over the row's groups
            scale, zero = (t.expand(rows, columns // group) for t in _per_row(qp, rows))
        else:
            scale, zero = qp.scale, qp.zero_point
        # u = q + t per group, t in [−quant_min, 15 − quant_max] (u stays in [0, 15]) and as near 8 − z as that
        # allows, so the offset m = (8 − z − t)·s is small (0 for symmetric and ≤ 3-bit grids): m is what
        # bfloat16 rounds most, and it is added to every weight of its group.
        shift = (8 - zero.to(torch.int32)).clamp(-qp.quant_min, 15 - qp.quant_max)
        codes = (qtensor.codes.to(torch.int32) + shift.repeat_interleave(group, 1)[:, :columns]).contiguous()
        offset = (8 - zero.float() - shift.float()) * scale.float()
        table = torch.stack([scale.float().t(), offset.t()], dim=-1).to(COMPUTE_DTYPE).contiguous()
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, 1)
        return cls(packed, table, group, columns, rows, bias)

    def forward(self, x: Tensor) -> Tensor:
        flat = x.reshape(-1, self.in_features).to(COMPUTE_DTYPE)
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(flat, self.packed, self.group_size, self.scales_and_offsets)
        y = y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias.to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, group_size={self.group_size}"


class Int8Linear(nn.Module):
    """y = (x·cᵀ)·s + (Σx)·(o − z)·s + b on torch's int8pack CPU kernel (see the module's docstring)."""

    def __init__(self, codes: Tensor, scales: Tensor, correction: Tensor | None, bias: Tensor | None = None):
        super().__init__()
        self.out_features, self.in_features = codes.shape
        self.register_buffer("codes", codes)  # (out, in) int8
        self.register_buffer("scales", scales)  # (out,) bfloat16
        self.register_buffer("correction", correction)  # (out,) float32 (o − z)·s, None when all zero
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())

    @classmethod
    def from_qtensor(cls, qtensor: QTensor, bias: Tensor | None = None) -> Int8Linear:
        reason = int8_refusal(qtensor)
        if reason:
            raise ValueError(f"this grid cannot run on the int8pack kernel: {reason}")
        qp = qtensor.qparams
        rows = qtensor.codes.shape[0]
        scale, zero = _per_row(qp, rows)  # (rows, 1) each
        offset = zero.to(torch.int32).clamp(qp.quant_max - 127, qp.quant_min + 128)  # q − o fits int8
        codes = (qtensor.codes.to(torch.int32) - offset).to(torch.int8).contiguous()
        correction = ((offset - zero).float() * scale.float()).reshape(rows)
        return cls(codes, scale.reshape(rows).to(COMPUTE_DTYPE).contiguous(),
                   correction if bool(correction.any()) else None, bias)

    def forward(self, x: Tensor) -> Tensor:
        flat = x.reshape(-1, self.in_features)
        y = torch.ops.aten._weight_int8pack_mm(flat.to(COMPUTE_DTYPE), self.codes, self.scales).to(x.dtype)
        if self.correction is not None:
            y = y + flat.sum(-1, keepdim=True) * self.correction.to(x.dtype)
        y = y.reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias.to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class Int8Embedding(nn.Module):
    """An embedding table read from int8 codes: row i is c_i·s_i + (o_i − z_i)·s_i. Built from an Int8Linear head,
    it holds the head's own tensors, so a tied embedding and head stay one tensor in memory."""

    def __init__(self, codes: Tensor, scales: Tensor, correction: Tensor | None):
        super().__init__()
        self.register_buffer("codes", codes)  # (rows, dim) int8
        self.register_buffer("scales", scales)  # (rows,) bfloat16
        self.register_buffer("correction", correction)  # (rows,) float32, or None

    @classmethod
    def from_head(cls, head: Int8Linear) -> Int8Embedding:
        return cls(head.codes, head.scales, head.correction)

    def forward(self, ids: Tensor) -> Tensor:
        rows = self.codes[ids].float() * self.scales[ids].float()[..., None]
        return rows if self.correction is None else rows + self.correction[ids][..., None]


KERNEL_MODULES = {"int4pack": Int4Linear, "int8pack": Int8Linear}


def kernel_module(qtensor: QTensor, kernel: str, bias: Tensor | None = None) -> nn.Module:
    """The module running `qtensor` on `kernel` (int4pack or int8pack)."""
    return KERNEL_MODULES[kernel].from_qtensor(qtensor, bias)


def module_bytes(module: nn.Module) -> int:
    """Bytes of every parameter and buffer a module holds (each tensor once): what one forward pass reads."""
    seen, total = set(), 0
    for t in [*module.parameters(), *module.buffers()]:
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total
