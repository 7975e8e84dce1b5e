"""Which samples calibrate a classifier: a fixed random subset of its training split, never the test split."""

from __future__ import annotations

import torch
from torch import Tensor

from compression.core.errors import InputError
from compression.data import Dataset


def calibration_images(dataset: Dataset, count: int, seed: int = 0) -> Tensor:
    """`count` training inputs chosen by `seed` (the test split only when the data has no training split)."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InputError(f"calibration needs at least one sample, got {count!r}")
    x = dataset.x_train if dataset.has_train else dataset.x_test
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:min(count, len(x))]
    return x[order]
