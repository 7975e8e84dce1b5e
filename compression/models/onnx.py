"""ONNX models: parsed with onnx (no code runs), evaluated with onnxruntime, weights = their initializers."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import onnx
import onnxruntime as ort
import torch
from google.protobuf.message import DecodeError
from onnx import numpy_helper
from torch import Tensor

from compression.core import readable, settings
from compression.core.errors import InputError, LimitExceeded
from compression.data import Dataset
from compression.formats import limits
from compression.metrics import Evaluation, logits_evaluation

# The standard-domain ops we accept: what PyTorch's exporters emit for MLPs, CNNs and small transformers.
SUPPORTED_OPS = frozenset("""
Add AveragePool BatchNormalization Cast Clip Concat Constant ConstantOfShape Conv Div Dropout Equal Erf Exp
Expand Flatten Gather Gelu Gemm GlobalAveragePool Identity LayerNormalization LeakyRelu LogSoftmax MatMul Max
MaxPool Mean Min Mul Neg Pad Pow Range ReduceMax ReduceMean ReduceSum Relu Reshape Shape Sigmoid Slice Softmax
Split Sqrt Squeeze Sub Tanh Transpose Unsqueeze Where
""".split())
# Which input of these ops is the weight the weight-level techniques act on, and its output-channel axis.
WEIGHT_INPUTS = {"Gemm": 1, "MatMul": 1, "Conv": 1}
@dataclass(frozen=True, eq=False)
class OnnxModel:
    """A parsed, checked ONNX model plus the facts the app needs about its weights."""

    name: str
    raw: bytes
    input_name: str
    input_shape: tuple[int | None, ...]  # None for a dynamic dimension
    num_outputs: int | None
    weight_axes: Mapping[str, int] = field(default_factory=dict)  # weight name -> output-channel axis
    op_types: tuple[str, ...] = ()

    @cached_property
    def _proto(self):
        return onnx.load_from_string(self.raw)

    def weights(self) -> dict[str, Tensor]:
        """The weight initializers (of Gemm/MatMul/Conv), as tensors the techniques may read."""
        inits = {i.name: i for i in self._proto.graph.initializer}
        return {k: torch.from_numpy(numpy_helper.to_array(inits[k]).copy()) for k in self.weight_axes}

    def all_initializers(self) -> dict[str, Tensor]:
        return {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in self._proto.graph.initializer}

    @cached_property
    def _session(self):
        return self.session()

    def session(self, weights: Mapping[str, Tensor] | None = None):
        """An onnxruntime session; `weights` override initializers without re-serializing the model."""
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = 1
        keep = []
        for name, tensor in (weights or {}).items():
            value = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(tensor.detach().numpy()))
            keep.append(value)  # onnxruntime does not own the buffer: keep it alive until the session exists
            options.add_initializer(name, value)
        try:
            return ort.InferenceSession(self.raw, options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise InputError(f"{self.name}: onnxruntime cannot run this model: {str(exc).splitlines()[0]}") from exc

    def logits(self, x: Tensor, weights: Mapping[str, Tensor] | None = None) -> Tensor:
        """Run the model on x (N, ...) in batches; the first output must be (N, classes)."""
        session = self._session if weights is None else self.session(weights)
        batch = self.input_shape[0] or 1024
        outs = []
        for i in range(0, len(x), batch):
            chunk = x[i:i + batch].numpy()
            pad = batch - len(chunk) if self.input_shape[0] else 0
            if pad:  # a model exported with a fixed batch size: pad the last chunk, then drop the padding
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
            try:
                out = session.run(None, {self.input_name: chunk})[0]
            except Exception as exc:  # onnxruntime's own error types: a failed op, an allocation refused
                raise InputError(f"{self.name}: onnxruntime failed to run this model: "
                                 f"{str(exc).splitlines()[0][:200]}") from exc
            outs.append(out[:len(out) - pad] if pad else out)
        logits = torch.from_numpy(np.concatenate(outs)).float()
        if logits.ndim != 2:
            raise InputError(f"{self.name}: the first output has shape {tuple(logits.shape)}, expected (N, classes)")
        return logits

    def evaluate(self, data: Dataset, weights: Mapping[str, Tensor] | None = None) -> Evaluation:
        return logits_evaluation(self.logits(data.x_test, weights), data.y_test)

    def with_initializers(self, weights: Mapping[str, Tensor], name: str) -> OnnxModel:
        """A new model whose initializers named in `weights` are replaced (re-serialized and re-checked)."""
        proto = onnx.load_from_string(self.raw)
        for init in proto.graph.initializer:
            if init.name in weights:
                init.CopyFrom(numpy_helper.from_array(weights[init.name].detach().numpy(), init.name))
        return load_onnx(proto.SerializeToString(), name)

    def check_data(self, data: Dataset) -> None:
        """Refuse evaluation data whose shape or labels do not fit the model."""
        expected = self.input_shape[1:]
        got = data.input_shape
        if len(expected) != len(got) or any(e is not None and e != g for e, g in zip(expected, got)):
            raise InputError(f"{data.name}: each sample of 'x' has shape {readable.shape(got)}, but the model expects "
                             f"{readable.shape(['any' if d is None else d for d in expected])} per sample")
        if self.num_outputs is not None and int(data.y_test.max()) >= self.num_outputs:
            raise InputError(f"{data.name}: labels go up to {int(data.y_test.max())}, "
                             f"but the model has only {self.num_outputs} outputs")


def load_onnx(raw: bytes, name: str = "model.onnx") -> OnnxModel:
    """Parse and check an ONNX file; refuse unsupported ops, external data and custom domains."""
    if not raw:
        raise InputError(f"{name} is empty")
    try:
        proto = onnx.load_from_string(raw)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise InputError(f"{name} is not a valid ONNX file (corrupt or truncated)") from exc
    if not proto.graph.node:
        raise InputError(f"{name} is not a valid ONNX file (no graph nodes)")
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise InputError(f"{name} failed the ONNX checker: {str(exc).splitlines()[0][:200]}") from exc
    if any(i.data_location == onnx.TensorProto.EXTERNAL for i in proto.graph.initializer):
        raise InputError(f"{name} keeps its weights in external files; save it with the weights inside")
    if proto.functions:
        raise InputError(f"{name} defines local functions; export it with functions inlined")
    unsupported = sorted({f"{n.domain + '::' if n.domain not in ('', 'ai.onnx') else ''}{n.op_type}"
                          for n in proto.graph.node
                          if n.domain not in ("", "ai.onnx") or n.op_type not in SUPPORTED_OPS})
    if unsupported:
        raise InputError(f"{name} uses ops this app does not support: {', '.join(unsupported)}. "
                         f"Supported: {', '.join(sorted(SUPPORTED_OPS))}")
    _check_sizes(proto, name)
    inits = {i.name: i for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise InputError(f"{name} has {len(inputs)} inputs; only single-input classifiers are supported")
    dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                 for d in inputs[0].type.tensor_type.shape.dim)
    out_dims = [d.dim_value if d.HasField("dim_value") else None
                for d in proto.graph.output[0].type.tensor_type.shape.dim]
    axes = {}
    for node in proto.graph.node:
        idx = WEIGHT_INPUTS.get(node.op_type)
        if idx is None or len(node.input) <= idx or node.input[idx] not in inits:
            continue
        weight = inits[node.input[idx]]
        if len(weight.dims) < 2:
            continue
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        # Gemm(transB=1) and Conv store (out, in, ...); MatMul and Gemm(transB=0) store (in, out).
        axes[weight.name] = 0 if node.op_type == "Conv" or trans_b else 1
    model = OnnxModel(name, raw, inputs[0].name, dims, out_dims[-1] if len(out_dims) == 2 else None,
                      axes, tuple(sorted({n.op_type for n in proto.graph.node})))
    model.session()  # fail now, with a clear message, if onnxruntime cannot build it
    return model


def _check_sizes(proto, name: str) -> None:
    """Refuse, before onnxruntime allocates anything, initializers or graph tensors past the element budget.

    Weights count fully; every other tensor whose shape inference (with constant propagation) gives a static size
    is checked alone, unknown dimensions counted as 1: ConstantOfShape(Constant([100000, 100000])) is refused here
    instead of asking for 37 GiB when evaluated.
    """
    budget = limits.ElementBudget(name)
    for init in proto.graph.initializer:
        budget.add(limits.numel(list(init.dims), f"{name}: initializer {init.name[:80]!r}"),
                   f"initializer {init.name[:80]!r}")
        try:
            numpy_helper.to_array(init)  # a view of raw_data, or a copy of the typed field: bounded by the file
        except Exception as exc:
            raise InputError(f"{name}: initializer {init.name[:80]!r} does not match its declared shape") from exc
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, data_prop=True).graph
    except Exception as exc:
        raise InputError(f"{name} failed ONNX shape inference: {str(exc).splitlines()[0][:200]}") from exc
    limit = settings.max_elements()
    for value in (*inferred.input, *inferred.value_info, *inferred.output):
        dims = value.type.tensor_type.shape.dim
        size = math.prod(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in dims)
        if size > limit:
            shown = [d.dim_value if d.HasField("dim_value") else "?" for d in dims]
            raise LimitExceeded(f"{name}: tensor {value.name[:80]!r} of shape {shown} would hold {size:,} elements; "
                                f"the limit is {limit:,} (${settings.MAX_ELEMENTS_ENV})")
