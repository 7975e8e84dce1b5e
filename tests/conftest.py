"""Shared fixtures: a test cache for the zoo, trained once per machine, and skips that CI turns into failures."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The zoo trains into a cache inside the checkout: a fresh clone trains once per test session, later runs reuse it.
os.environ.setdefault("COMPRESSION_LAB_CACHE", str(ROOT / ".cache" / "test-cache"))

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip with a clear reason on a developer machine; fail in CI, where nothing may skip."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must not skip: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def fashion_available() -> None:
    from compression.data import fashion_mnist_available

    require(fashion_mnist_available(),
            "Fashion-MNIST is not installed (sudo apt-get install dataset-fashion-mnist)")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    require(Path(path).exists(), "Chromium is not installed (sudo apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        require(False, "playwright is not installed (pip install playwright)")
    return path


@pytest.fixture(scope="session")
def zoo():
    """Load (training on first use) a zoo model; each is trained at most once per cache."""
    from compression.loading import load_zoo

    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = load_zoo(name)
        return cache[name]

    return get


def state_checksum(module) -> float:
    """A number that changes if any parameter or buffer of `module` changes."""
    import torch

    with torch.no_grad():
        return float(sum((t.double() * (i + 1)).sum() for i, t in enumerate(module.state_dict().values())))
