import gzip
import io
import struct

import numpy as np
import pytest
import torch

from compression.core.errors import InputError
from compression.data import DatasetUnavailable, find_fashion_mnist, load_dataset, load_npz, parse_idx, read_idx


def test_digits_is_a_fixed_stratified_split():
    data = load_dataset("digits")
    assert data.x_test.shape == (360, 1, 8, 8) and data.x_train.shape == (1437, 1, 8, 8)
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    per_class = torch.bincount(data.y_test, minlength=10)
    assert per_class.min() >= 35 and per_class.max() <= 37  # stratified: ~36 of each digit
    from compression.data import _digits
    _digits.cache_clear()
    again = load_dataset("digits")
    assert torch.equal(again.x_test, data.x_test) and torch.equal(again.y_train, data.y_train)


def _idx(array: np.ndarray, code: int = 0x08) -> bytes:
    return bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def test_idx_round_trip_plain_and_gzipped(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(_idx(array))
    (tmp_path / "b.gz").write_bytes(gzip.compress(_idx(array)))
    assert np.array_equal(read_idx(tmp_path / "a"), array)
    assert np.array_equal(read_idx(tmp_path / "b.gz"), array)


@pytest.mark.parametrize("raw", [b"", b"\x01\x02\x08\x01", _idx(np.zeros((5, 5), np.uint8))[:-3]])
def test_idx_rejects_bad_or_truncated_bytes(raw):
    with pytest.raises(InputError):
        parse_idx(raw)


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESSION_LAB_FASHION_MNIST", str(tmp_path))
    monkeypatch.setattr("compression.core.settings.DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    monkeypatch.setenv("COMPRESSION_LAB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DatasetUnavailable, match="apt-get install dataset-fashion-mnist"):
        find_fashion_mnist()


def test_fashion_mnist_reads_the_installed_idx_files(fashion_available):
    data = load_dataset("fashion-mnist")
    assert data.x_train.shape == (60000, 1, 28, 28) and data.x_test.shape == (10000, 1, 28, 28)
    assert set(data.y_test.unique().tolist()) == set(range(10))


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_npz_good_data_loads():
    data = load_npz(_npz(x=np.zeros((4, 1, 8, 8), np.float32), y=np.array([0, 1, 2, 9])), classes=10)
    assert data.input_shape == (1, 8, 8) and data.num_classes == 10 and not data.has_train


@pytest.mark.parametrize("arrays, message", [
    (dict(x=np.zeros((4, 64))), "missing y"),
    (dict(x=np.zeros((4, 64)), y=np.zeros((3,), int)), "4 samples but 'y' has 3"),
    (dict(x=np.zeros((4, 64)), y=np.zeros((4, 2), int)), "integer class labels"),
    (dict(x=np.zeros((4, 64)), y=np.array([0, 1, 2, 10])), r"labels must lie in \[0, 9\]"),
    (dict(x=np.zeros((4, 64)), y=np.array([0, -1, 2, 3])), "labels must lie"),
    (dict(x=np.full((2, 64), np.nan), y=np.array([0, 1])), "NaN"),
    (dict(x=np.array([object(), object()], dtype=object), y=np.array([0, 1])), "numeric"),
])
def test_npz_bad_data_is_refused_with_a_reason(arrays, message):
    with pytest.raises(InputError, match=message):
        load_npz(_npz(**arrays), classes=10)


def test_npz_corrupt_bytes_are_refused():
    with pytest.raises(InputError, match="not a readable .npz"):
        load_npz(b"PK\x03\x04 definitely not a zip")
