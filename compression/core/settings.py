"""Where Compression Lab keeps its files; every location can be overridden by an environment variable."""

from __future__ import annotations

import os
from pathlib import Path

from compression.core.errors import InputError

CACHE_ENV = "COMPRESSION_LAB_CACHE"
FASHION_MNIST_ENV = "COMPRESSION_LAB_FASHION_MNIST"
# A user's own architecture, named by whoever starts the server (never from the browser).
ARCH_ENV = "COMPRESSION_LAB_ARCH"  # package.module:function returning an nn.Module
ARCH_WEIGHTS_ENV = "COMPRESSION_LAB_ARCH_WEIGHTS"  # its weights (.safetensors or a weights-only .pt)
ARCH_DATA_ENV = "COMPRESSION_LAB_ARCH_DATA"  # its data: a built-in dataset name or an .npz with x and y

# Limits on untrusted files (uploads, CLI inputs): one size cap for every kind of file, and one budget of tensor
# elements that a decoder may allocate for a file (or a model built from it), checked before allocating.
MAX_UPLOAD_ENV = "COMPRESSION_LAB_MAX_UPLOAD_MB"
MAX_ELEMENTS_ENV = "COMPRESSION_LAB_MAX_ELEMENTS"
# Language models are far larger than the uploaded classifiers the element budget is sized for (SmolLM2 has 135M
# parameters): a model's config and files are checked against this budget of parameters instead.
MAX_LM_PARAMS_ENV = "COMPRESSION_LAB_MAX_LM_PARAMS"
DEFAULT_MAX_UPLOAD_MB = 200  # Streamlit's own default for server.maxUploadSize
SHARED_MAX_UPLOAD_MB = 50  # shared mode: a class's uploads are digit classifiers and small LMs, not 200 MB files
DEFAULT_MAX_ELEMENTS = 1 << 25  # 33.5M elements: 128 MiB of float32, ~125x the largest zoo model
DEFAULT_MAX_LM_PARAMS = 1 << 29  # 537M parameters: 2 GiB of float32; SmolLM2-360M and Qwen2.5-0.5B fit

# Debian's dataset-fashion-mnist package puts the IDX files here (`dpkg -L dataset-fashion-mnist`).
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def cache_dir() -> Path:
    """Folder for trained zoo weights and other derived files (created on demand)."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "compression-lab"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def fashion_mnist_dirs() -> list[Path]:
    """Folders searched, in order, for the Fashion-MNIST IDX files."""
    dirs = []
    if os.environ.get(FASHION_MNIST_ENV):
        dirs.append(Path(os.environ[FASHION_MNIST_ENV]))
    dirs.append(DEBIAN_FASHION_MNIST)
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "compression-lab"
    dirs.append(Path(root) / "fashion-mnist")
    return dirs


def max_upload_mb() -> int:
    """The size cap, in MiB, for every file the app or the CLI reads ($COMPRESSION_LAB_MAX_UPLOAD_MB)."""
    return _positive_int(MAX_UPLOAD_ENV, SHARED_MAX_UPLOAD_MB if shared_mode() else DEFAULT_MAX_UPLOAD_MB)


def max_upload_bytes() -> int:
    return max_upload_mb() * 1024 * 1024


def max_elements() -> int:
    """Most tensor elements one file may hold or declare, and most parameters a model built from it may have."""
    return _positive_int(MAX_ELEMENTS_ENV, DEFAULT_MAX_ELEMENTS)


def max_lm_params() -> int:
    """Most parameters a language model (its config, its GGUF or safetensors files) may declare."""
    return _positive_int(MAX_LM_PARAMS_ENV, DEFAULT_MAX_LM_PARAMS)


def _positive_int(env: str, default: int) -> int:
    raw = os.environ.get(env, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) <= 0:
        raise InputError(f"${env} must be a positive whole number, got {raw!r}")
    return int(raw)


# The shared server (a class on one machine): see the README's "Running for a class".
SHARED_ENV = "COMPRESSION_LAB_SHARED"  # 1: visitors delete only their own runs, uploads are capped, jobs pooled
MAX_JOBS_ENV = "COMPRESSION_LAB_MAX_JOBS"  # how many background jobs train at once; the rest queue
TORCH_THREADS_ENV = "COMPRESSION_LAB_TORCH_THREADS"  # torch's intra-op threads per request, job and CLI command


def shared_mode() -> bool:
    """True when the server is shared by many visitors ($COMPRESSION_LAB_SHARED=1, true or yes)."""
    return os.environ.get(SHARED_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def max_jobs() -> int:
    """Background jobs that may train at once: $COMPRESSION_LAB_MAX_JOBS, else one per core (half the cores,
    at least one, in shared mode, so the sliders of everyone else keep the other half)."""
    cores = os.cpu_count() or 1
    return _positive_int(MAX_JOBS_ENV, max(1, cores // 2) if shared_mode() else cores)


def torch_threads() -> int:
    """torch's intra-op threads for every request, background job and CLI command: $COMPRESSION_LAB_TORCH_THREADS,
    else 1 (measured: README, `python -m bench threads`)."""
    return _positive_int(TORCH_THREADS_ENV, 1)
