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
