import numpy as np
import pytest
import torch

from compression.core.errors import InputError
from compression.formats import clab
from compression.models.architectures import MLP
from compression.pipeline.weight_sharing import kmeans_1d, refit_codebooks, share_weights


def _pruned_mlp(seed=0, keep=0.1):
    torch.manual_seed(seed)
    model = MLP(64, (100,), 10)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for name in ("fc1.weight", "fc2.weight"):
        w = state[name]
        state[name] = torch.where(w.abs() >= w.abs().flatten().quantile(1 - keep), w, torch.zeros(()))
    shared = {n: share_weights(state[n], 5) for n in ("fc1.weight", "fc2.weight")}
    for n, st in shared.items():
        state[n] = st.dense()
    return state, shared


@pytest.mark.parametrize("index_bits", [1, 3, 5, 8])
def test_relative_indices_round_trip_with_escapes(index_bits):
    rng = np.random.default_rng(index_bits)
    mask = rng.random(5000) < 0.03
    mask[0] = mask[-1] = True
    symbols = clab.relative_indices(mask, index_bits)
    assert symbols.max() <= (1 << index_bits) - 1
    assert np.array_equal(clab.positions_from_indices(symbols, index_bits), np.flatnonzero(mask))


def test_file_round_trips_to_identical_tensors():
    state, shared = _pruned_mlp()
    data = clab.encode(state, shared, "mlp", {"model": "mlp"})
    decoded = clab.decode(data)
    assert decoded.arch == "mlp" and decoded.meta == {"model": "mlp"}
    assert all(torch.equal(decoded.state[k], v.float()) for k, v in state.items())


def test_file_is_far_smaller_than_dense_fp32():
    state, shared = _pruned_mlp()
    data = clab.encode(state, shared, "mlp")
    dense_bytes = sum(v.numel() * 4 for v in state.values())
    assert len(data) * 8 < dense_bytes  # 10% kept, 5-bit codes, relative indices, Huffman: > 8x


def test_dense_coded_tensor_needs_no_positions():
    w = torch.randn(20, 30)
    st = share_weights(w, 4)
    decoded = clab.decode(clab.encode({"w": st.dense()}, {"w": st}, "x"))
    assert torch.equal(decoded.state["w"], st.dense())


@pytest.mark.parametrize("damage", ["truncate", "flip", "magic"])
def test_damaged_files_are_refused(damage):
    state, shared = _pruned_mlp()
    data = bytearray(clab.encode(state, shared, "mlp"))
    if damage == "truncate":
        data = data[: len(data) * 2 // 3]
    elif damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data[:4] = b"NOPE"
    with pytest.raises(InputError):
        clab.decode(bytes(data))


def test_newer_format_version_is_refused_with_advice():
    state, shared = _pruned_mlp()
    data = bytearray(clab.encode(state, shared, "mlp"))
    data[4:6] = (clab.FORMAT_VERSION + 1).to_bytes(2, "big")
    with pytest.raises(InputError, match="newer Compression Lab"):
        clab.decode(bytes(data))


def test_kmeans_converges_to_cluster_means():
    values = torch.cat([torch.full((50,), -1.0), torch.full((30,), 0.5), torch.full((20,), 2.0)]) \
        + 0.01 * torch.randn(100)
    centroids, codes = kmeans_1d(values, 3)
    assert torch.allclose(centroids, torch.tensor([-1.0, 0.5, 2.0]), atol=0.01)
    assert torch.equal(torch.bincount(codes), torch.tensor([50, 30, 20]))


def test_shared_weights_keep_zeros_and_refit_moves_centroids():
    w = torch.randn(40, 40) * (torch.rand(40, 40) > 0.8)
    st = share_weights(w, 3)
    assert torch.equal(st.dense() == 0, w == 0) and len(st.codebook) == 8
    refit = refit_codebooks({"w": w + 1.0}, {"w": st})["w"]
    assert torch.allclose(refit.codebook, st.codebook + 1.0, atol=0.15)
