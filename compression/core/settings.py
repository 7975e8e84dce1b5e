"""Where Compression Lab keeps its files; every location can be overridden by an environment variable."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "COMPRESSION_LAB_CACHE"
FASHION_MNIST_ENV = "COMPRESSION_LAB_FASHION_MNIST"
# A user's own architecture, named by whoever starts the server (never from the browser).
ARCH_ENV = "COMPRESSION_LAB_ARCH"  # package.module:function returning an nn.Module
ARCH_WEIGHTS_ENV = "COMPRESSION_LAB_ARCH_WEIGHTS"  # its weights (.safetensors or a weights-only .pt)
ARCH_DATA_ENV = "COMPRESSION_LAB_ARCH_DATA"  # its data: a built-in dataset name or an .npz with x and y

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


# The shared server (a class on one machine): see the README's "Running for a class".
SHARED_ENV = "COMPRESSION_LAB_SHARED"  # 1: visitors delete only their own runs, uploads are capped, jobs pooled
MAX_JOBS_ENV = "COMPRESSION_LAB_MAX_JOBS"  # how many background jobs train at once; the rest queue
TORCH_THREADS_ENV = "COMPRESSION_LAB_TORCH_THREADS"  # torch's intra-op threads in the server process


def _int_env(name: str) -> int | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"${name} must be a whole number, got {text!r}") from None
    if value < 1:
        raise ValueError(f"${name} must be at least 1, got {value}")
    return value


def shared_mode() -> bool:
    """True when the server is shared by many visitors ($COMPRESSION_LAB_SHARED=1, true or yes)."""
    return os.environ.get(SHARED_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def max_jobs() -> int:
    """Background jobs that may train at once: $COMPRESSION_LAB_MAX_JOBS, else one per core (half the cores,
    at least one, in shared mode, so the sliders of everyone else keep the other half)."""
    cores = os.cpu_count() or 1
    return _int_env(MAX_JOBS_ENV) or (max(1, cores // 2) if shared_mode() else cores)


def torch_threads() -> int:
    """torch's intra-op threads in the server: $COMPRESSION_LAB_TORCH_THREADS, else 1 (measured: README)."""
    return _int_env(TORCH_THREADS_ENV) or 1
