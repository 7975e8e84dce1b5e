"""Weight sharing (Deep Compression): each layer's kept weights take one of 2**bits shared values."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from compression.core.errors import InputError
from compression.formats.clab import SharedTensor


def kmeans_1d(values: Tensor, k: int, iters: int = 30) -> tuple[Tensor, Tensor]:
    """k-means on scalars with linear initialisation over [min, max] (best for weights in Han et al. 2016).

    Returns (centroids sorted ascending, code of each value).
    """
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    flat = values.detach().float().reshape(-1)
    if flat.numel() == 0:
        return torch.zeros(1), torch.zeros(0, dtype=torch.long)
    lo, hi = flat.min(), flat.max()
    centroids = torch.linspace(lo.item(), hi.item(), k) if k > 1 else flat.mean().reshape(1)
    codes = torch.zeros(flat.numel(), dtype=torch.long)
    for _ in range(iters):
        codes = _assign(flat, centroids)
        sums = torch.zeros(k).index_add_(0, codes, flat)
        counts = torch.bincount(codes, minlength=k).float()
        updated = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
        if torch.equal(updated, centroids):
            break
        centroids = updated
    order = torch.argsort(centroids)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(k)
    codes = rank[_assign(flat, centroids)]
    return centroids[order], codes.reshape(values.shape)


def _assign(flat: Tensor, centroids: Tensor) -> Tensor:
    # 1-D: the nearest centroid is found by binary search between sorted centroids' midpoints.
    order = torch.argsort(centroids)
    sorted_c = centroids[order]
    mids = (sorted_c[1:] + sorted_c[:-1]) / 2
    return order[torch.searchsorted(mids, flat)]


def share_weights(weight: Tensor, bits: int) -> SharedTensor:
    """Cluster the non-zero entries of `weight` into 2**bits shared values; zeros stay pruned."""
    if not 1 <= bits <= 8:
        raise InputError(f"weight sharing needs 1 to 8 bits, got {bits}")
    mask = weight != 0
    kept = weight[mask]
    k = max(1, min(2 ** bits, kept.numel()))
    centroids, codes = kmeans_1d(kept, k)
    full_codes = torch.zeros(weight.shape, dtype=torch.long)
    full_codes[mask] = codes
    return SharedTensor(centroids.float(), full_codes, mask)


def refit_codebooks(weights: Mapping[str, Tensor], shared: Mapping[str, SharedTensor]) -> dict[str, SharedTensor]:
    """Codes fixed, each centroid moved to the mean of its cluster in `weights` (trained quantization)."""
    out = {}
    for name, st in shared.items():
        kept = weights[name].detach()[st.mask]
        codes = st.codes[st.mask]
        k = len(st.codebook)
        sums = torch.zeros(k).index_add_(0, codes, kept.float())
        counts = torch.bincount(codes, minlength=k).float()
        out[name] = SharedTensor(torch.where(counts > 0, sums / counts.clamp(min=1), st.codebook), st.codes, st.mask)
    return out
