"""Reading untrusted weight files without unpickling: safetensors, or torch.load(weights_only=True)."""

from __future__ import annotations

import io
import pickle
import zipfile
from collections.abc import Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from torch import Tensor, nn

from compression.core.errors import InputError

MAX_UPLOAD_BYTES = 200 * 1024 * 1024
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
REFUSED_SUFFIXES = {
    ".pt2": "a torch.export (.pt2) archive can run code when it is loaded",
    ".ptl": "a TorchScript (mobile) file can run code when it is loaded",
    ".jit": "a TorchScript file can run code when it is loaded",
    ".pkl": "a pickle can run arbitrary code when it is loaded",
    ".pickle": "a pickle can run arbitrary code when it is loaded",
}
SAFE_FORMATS_HINT = "Use .safetensors, a weights-only state dict (.pt/.pth), or ONNX."


def read_state_dict(data: bytes, filename: str) -> dict[str, Tensor]:
    """Parse an uploaded weights file into {name: tensor}, refusing anything that could run code."""
    lower = filename.lower()
    for suffix, why in REFUSED_SUFFIXES.items():
        if lower.endswith(suffix):
            raise InputError(f"{filename}: refused, {why}. {SAFE_FORMATS_HINT}")
    if not lower.endswith(WEIGHT_SUFFIXES):
        raise InputError(f"{filename}: unsupported file type. {SAFE_FORMATS_HINT}")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InputError(f"{filename}: {len(data)} bytes is over the {MAX_UPLOAD_BYTES} byte limit")
    if not data:
        raise InputError(f"{filename} is empty")
    state = _read_safetensors(data, filename) if lower.endswith(".safetensors") else _read_torch(data, filename)
    return _checked(state, filename)


def _read_safetensors(data: bytes, filename: str) -> dict[str, Tensor]:
    try:
        return safetensors_load(data)
    except (SafetensorError, ValueError, OSError, RuntimeError) as exc:
        raise InputError(f"{filename} is not a valid safetensors file (corrupt or truncated): {exc}") from exc


def _read_torch(data: bytes, filename: str) -> object:
    if _is_torchscript(data):
        raise InputError(f"{filename}: refused, it is a TorchScript archive, which can run code when loaded. "
                         f"{SAFE_FORMATS_HINT}")
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise InputError(f"{filename}: refused, it holds Python objects other than tensors "
                         f"(weights_only loading rejects them, so nothing was executed)") from exc
    except Exception as exc:  # torch raises RuntimeError/EOFError/zipfile errors for damaged files
        raise InputError(f"{filename} is not a readable PyTorch state dict (corrupt or truncated): "
                         f"{type(exc).__name__}") from exc


def _is_torchscript(data: bytes) -> bool:
    if not zipfile.is_zipfile(io.BytesIO(data)):
        return False
    try:
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except zipfile.BadZipFile:
        return False
    # TorchScript archives carry their Python source in code/ and a constants.pkl beside data.pkl.
    return any(n.split("/", 1)[-1].startswith(("code/", "constants.pkl")) for n in names)


def _checked(state: object, filename: str) -> dict[str, Tensor]:
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]  # a common checkpoint layout
    if not isinstance(state, Mapping) or not state:
        raise InputError(f"{filename} does not hold a state dict (a mapping of names to tensors)")
    out = {}
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise InputError(f"{filename}: entry {key!r} is not a named tensor")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise InputError(f"{filename}: tensor {key!r} contains NaN or Inf values")
        out[key] = value.detach().to("cpu")
    return out


def load_into(model: nn.Module, state: Mapping[str, Tensor], label: str) -> nn.Module:
    """Load `state` into `model` strictly, explaining any mismatch in one line."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:4])}{' …' if len(missing) > 4 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:4])}{' …' if len(unexpected) > 4 else ''}")
        raise InputError(f"{label}: weights do not fit this architecture ({'; '.join(parts)})")
    for key, tensor in own.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise InputError(f"{label}: tensor {key!r} has shape {tuple(state[key].shape)}, "
                             f"the architecture expects {tuple(tensor.shape)}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return model.eval()
