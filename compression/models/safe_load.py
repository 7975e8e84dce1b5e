"""Reading untrusted weight files without unpickling: safetensors, or torch.load(weights_only=True)."""

from __future__ import annotations

import io
import pickle
import re
import zipfile
from collections.abc import Callable, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from torch import Tensor, nn

from compression.core import settings
from compression.core.errors import InputError, LimitExceeded
from compression.formats import limits, safetensors_header

# torch.load(weights_only=True) had code-execution bypasses up to 2.9.1: CVE-2025-32434 (GHSA-53q9-r3pm-6pq6,
# fixed in 2.6.0) and CVE-2026-24747 (GHSA-63cw-57p8-fm3p, fixed in 2.10.0). Older torch never unpickles uploads.
MIN_TORCH_FOR_PICKLE = (2, 10)
MAX_TENSORS = 100_000  # entries of one weights file (a state dict of a large model has a few thousand)
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
    limits.check_upload_size(data, filename)
    if not data:
        raise InputError(f"{filename} is empty")
    state = _read_safetensors(data, filename) if lower.endswith(".safetensors") else _read_torch(data, filename)
    return _checked(state, filename)


def _read_safetensors(data: bytes, filename: str) -> dict[str, Tensor]:
    _check_safetensors_header(data, filename)
    try:
        return safetensors_load(data)
    except (SafetensorError, ValueError, OSError, RuntimeError) as exc:
        raise InputError(f"{filename} is not a valid safetensors file (corrupt or truncated): {exc}") from exc


def _check_safetensors_header(data: bytes, filename: str) -> None:
    """Check the JSON header (size, depth, entry count, shapes, dtypes, offsets, element budget) before loading."""
    where = f"{filename} (safetensors)"
    length = safetensors_header.header_length(data[:8], len(data), where)
    safetensors_header.check_header(data[8:8 + length], len(data), where, limits.ElementBudget(where))


def torch_version() -> tuple[int, int]:
    """(major, minor) of the running torch."""
    match = re.match(r"(\d+)\.(\d+)", str(torch.__version__))
    return (int(match[1]), int(match[2])) if match else (0, 0)


def _read_torch(data: bytes, filename: str) -> object:
    if torch_version() < MIN_TORCH_FOR_PICKLE:
        wanted = ".".join(map(str, MIN_TORCH_FOR_PICKLE))
        raise InputError(f"{filename}: refused, this server runs torch {torch.__version__}, whose weights_only "
                         f"loader has known code-execution bypasses (fixed in {wanted}). Upgrade torch to "
                         f"{wanted} or later, or upload .safetensors.")
    _check_torch_archive(data, filename)
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise InputError(f"{filename}: refused, it holds Python objects other than tensors "
                         f"(weights_only loading rejects them, so nothing was executed)") from exc
    except Exception as exc:  # torch raises RuntimeError/EOFError/zipfile errors for damaged files
        raise InputError(f"{filename} is not a readable PyTorch state dict (corrupt or truncated): "
                         f"{type(exc).__name__}") from exc


def _check_torch_archive(data: bytes, filename: str) -> None:
    """A torch.save zip: not TorchScript, a bounded directory, records stored uncompressed inside the file."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise InputError(f"{filename} is not a readable PyTorch state dict (corrupt or truncated, or saved by "
                         f"torch before 1.6, which is not read): re-save it with a current torch, or as .safetensors")
    members = limits.zip_members(data, filename, MAX_TENSORS, "PyTorch archive")
    # TorchScript archives carry their Python source in code/ and a constants.pkl beside data.pkl.
    if any(m.filename.split("/", 1)[-1].startswith(("code/", "constants.pkl")) for m in members):
        raise InputError(f"{filename}: refused, it is a TorchScript archive, which can run code when loaded. "
                         f"{SAFE_FORMATS_HINT}")
    if any(m.compress_type != zipfile.ZIP_STORED for m in members) or sum(m.file_size for m in members) > len(data):
        raise InputError(f"{filename} is not a readable PyTorch state dict: torch.save stores its records "
                         "uncompressed, this archive does not")


def _checked(state: object, filename: str) -> dict[str, Tensor]:
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]  # a common checkpoint layout
    if not isinstance(state, Mapping) or not state:
        raise InputError(f"{filename} does not hold a state dict (a mapping of names to tensors)")
    if len(state) > MAX_TENSORS:
        raise LimitExceeded(f"{filename}: {len(state):,} tensors is over the limit of {MAX_TENSORS:,}")
    budget, out = limits.ElementBudget(filename), {}
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise InputError(f"{filename}: entry {str(key)[:80]!r} is not a named tensor")
        # A view may declare far more elements than its storage holds (stride 0): count what it declares.
        budget.add(value.numel(), f"tensor {key[:80]!r} has shape {tuple(value.shape)}")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise InputError(f"{filename}: tensor {key!r} contains NaN or Inf values")
        out[key] = value.detach().to("cpu")
    return out


def build_and_load(build: Callable[[Mapping[str, Tensor]], nn.Module], state: Mapping[str, Tensor],
                   label: str) -> nn.Module:
    """`build(state)` loaded with `state`, refused before allocating when the model would break the element budget.

    `build` infers layer sizes from the state (an architecture's from_state_dict); it first runs on the meta
    device, where nothing is allocated, so a shape such as (10**7, 0) cannot make it build a giant model.
    """
    with torch.device("meta"):
        skeleton = build(state)
    shapes = skeleton.state_dict()
    params = sum(t.numel() for t in shapes.values())
    if params > settings.max_elements():
        raise LimitExceeded(f"{label}: these shapes would build a model of {params:,} parameters; the limit is "
                            f"{settings.max_elements():,} (${settings.MAX_ELEMENTS_ENV})")
    _check_fits(shapes, state, label)  # a mismatch is refused before the real model is allocated
    return load_into(build(state), state, label)


def load_into(model: nn.Module, state: Mapping[str, Tensor], label: str) -> nn.Module:
    """Load `state` into `model` strictly, explaining any mismatch in one line."""
    own = model.state_dict()
    _check_fits(own, state, label)
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return model.eval()


def _check_fits(own: Mapping[str, Tensor], state: Mapping[str, Tensor], label: str) -> None:
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
