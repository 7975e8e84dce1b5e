"""The model zoo: each model trains itself on first use (fixed seed) and is cached on disk."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save
from torch import nn

from compression.core.errors import InputError
from compression.core.files import acquire, write_bytes_atomic
from compression.core.progress import Waiting, run_to_end
from compression.core.settings import cache_dir
from compression.data import load_dataset
from compression.metrics import evaluate, state_dict_of
from compression.models.architectures import ARCHITECTURES, get_architecture
from compression.training import Step, TrainConfig, fit

# Bump when an architecture or recipe changes, so stale caches are retrained instead of reused.
ZOO_VERSION = 1

RECIPES: dict[str, TrainConfig] = {
    "mlp": TrainConfig(epochs=40, batch_size=64, lr=3e-3, weight_decay=1e-4),
    "mlp-wide": TrainConfig(epochs=40, batch_size=64, lr=2e-3, weight_decay=1e-4),
    "cnn": TrainConfig(epochs=30, batch_size=64, lr=3e-3, weight_decay=1e-4),
    "transformer": TrainConfig(epochs=60, batch_size=64, lr=3e-3, weight_decay=1e-4),
    "lenet-300-100": TrainConfig(epochs=12, batch_size=128, lr=1e-3, weight_decay=0.0),
}
ZOO = tuple(RECIPES)


def zoo_path(name: str) -> Path:
    return cache_dir() / "zoo" / f"{name}-v{ZOO_VERSION}.safetensors"


def is_cached(name: str) -> bool:
    return zoo_path(name).is_file()


def train_zoo_model(name: str) -> Iterator[Step | Waiting]:
    """Train zoo model `name` from its fixed seed and cache it, yielding progress; nothing if already cached.

    One trainer per model across processes and sessions: while another holds the model's lock, this yields
    `Waiting` steps (so a page can say "waiting for another process training it" rather than sit at 0%), then
    finds the cached file the other one wrote.
    """
    if name not in RECIPES:
        raise InputError(f"unknown zoo model {name!r}; choose one of {', '.join(ZOO)}")
    path = zoo_path(name)
    lock = yield from acquire(path.with_suffix(".lock"), lambda s: Waiting(f"another process training {name}", s))
    try:
        if path.is_file():  # another session finished it while we waited for the lock
            return
        arch, recipe = get_architecture(name), RECIPES[name]
        data = load_dataset(arch.dataset)
        torch.manual_seed(recipe.seed)
        model = arch.build()
        start = time.perf_counter()
        yield from fit(model, data, recipe)
        seconds = time.perf_counter() - start
        result = evaluate(model, data.x_test, data.y_test)
        meta = {"name": name, "dataset": arch.dataset, "accuracy": result.accuracy, "loss": result.loss,
                "train_seconds": round(seconds, 2), "epochs": recipe.epochs, "seed": recipe.seed,
                "torch": torch.__version__, "zoo_version": ZOO_VERSION}
        # atomic: a killed run never leaves a half-written cache file
        write_bytes_atomic(path, save(state_dict_of(model), metadata={"compression_lab": json.dumps(meta)}))
    finally:
        lock.release()


def load_zoo_module(name: str) -> nn.Module:
    """The trained zoo model (training it first if needed), in eval mode. Callers must not mutate it."""
    run_to_end(train_zoo_model(name))
    arch = get_architecture(name)
    model = arch.build()
    model.load_state_dict(load_file(str(zoo_path(name))))
    return model.eval()


def training_record(name: str) -> dict:
    """What was recorded when the cached model was trained (accuracy, seconds, seed, versions)."""
    with safe_open(str(zoo_path(name)), framework="pt") as f:
        return json.loads((f.metadata() or {}).get("compression_lab", "{}"))


assert set(RECIPES) == set(ARCHITECTURES), "every architecture needs a training recipe"
