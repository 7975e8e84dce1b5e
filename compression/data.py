"""Built-in datasets (digits, Fashion-MNIST) and user evaluation data, as tensors of images (N, C, H, W)."""

from __future__ import annotations

import gzip
import io
import math
import struct
import zipfile
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from compression.core import readable
from compression.core.errors import InputError
from compression.core.settings import FASHION_MNIST_ENV, fashion_mnist_dirs
from compression.formats import limits

DIGITS_CLASSES = tuple(str(i) for i in range(10))
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
MAX_NPZ_SAMPLES = 200_000
MAX_CLASSES = 100_000  # labels become class names; ImageNet-21k has 21,841


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split; `x_train` is None for evaluation-only data (e.g. an uploaded .npz)."""

    name: str
    x_test: Tensor
    y_test: Tensor
    classes: tuple[str, ...]
    x_train: Tensor | None = None
    y_train: Tensor | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_test.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def has_train(self) -> bool:
        return self.x_train is not None


DATASETS = ("digits", "fashion-mnist")


class DatasetUnavailable(InputError):
    """A dataset whose files are not on this machine."""


def load_dataset(name: str) -> Dataset:
    """Return a built-in dataset by name; cached, so every caller shares the same read-only tensors."""
    if name == "digits":
        return _digits()
    if name == "fashion-mnist":
        return _fashion_mnist()
    raise InputError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


@lru_cache(maxsize=None)
def _digits() -> Dataset:
    from sklearn.datasets import load_digits  # lazy: scikit-learn and the pandas it pulls in weigh 110 MB, and a
    from sklearn.model_selection import train_test_split  # language-model process never reads the digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8) in [0, 1]
    y = bunch.target.astype(np.int64)
    # Fixed stratified 80/20 split: every model and every page sees the same 360 test images.
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return Dataset("digits", _frozen(x_te), _frozen(y_te), DIGITS_CLASSES, _frozen(x_tr), _frozen(y_tr))


@lru_cache(maxsize=None)
def _fashion_mnist() -> Dataset:
    folder = find_fashion_mnist()
    x_tr = read_idx(_idx_path(folder, "train-images-idx3-ubyte"))
    y_tr = read_idx(_idx_path(folder, "train-labels-idx1-ubyte"))
    x_te = read_idx(_idx_path(folder, "t10k-images-idx3-ubyte"))
    y_te = read_idx(_idx_path(folder, "t10k-labels-idx1-ubyte"))
    to_x = lambda a: _frozen((a.astype(np.float32) / 255.0)[:, None])  # noqa: E731  (N, 1, 28, 28)
    to_y = lambda a: _frozen(a.astype(np.int64))  # noqa: E731
    return Dataset("fashion-mnist", to_x(x_te), to_y(y_te), FASHION_CLASSES, to_x(x_tr), to_y(y_tr))


def find_fashion_mnist() -> Path:
    """Folder holding the four Fashion-MNIST IDX files, or DatasetUnavailable saying how to get them."""
    for folder in fashion_mnist_dirs():
        if all(_idx_path(folder, stem) for stem in _FASHION_STEMS):
            return folder
    searched = ", ".join(str(d) for d in fashion_mnist_dirs())
    raise DatasetUnavailable(
        "Fashion-MNIST is not installed. On Debian/Ubuntu run `sudo apt-get install dataset-fashion-mnist`, "
        f"or put the four IDX files (train/t10k images and labels, .gz or not) in a folder named by "
        f"${FASHION_MNIST_ENV}. Searched: {searched}"
    )


def fashion_mnist_available() -> bool:
    try:
        find_fashion_mnist()
        return True
    except DatasetUnavailable:
        return False


_FASHION_STEMS = (
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
)


def _idx_path(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return parse_idx(raw, str(path))


def parse_idx(raw: bytes, where: str = "IDX data") -> np.ndarray:
    """Parse IDX bytes: 2 zero bytes, a dtype code, the number of dims, big-endian sizes, then data."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise InputError(f"{where} is not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise InputError(f"{where} is truncated (header)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    count = int(np.prod(shape)) if shape else 0
    if len(raw) - header < count * dtype.itemsize:
        raise InputError(f"{where} is truncated: expected {count} values of shape {shape}")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(shape)


def load_npz(data: bytes, *, name: str = "upload", classes: int | None = None) -> Dataset:
    """Evaluation data from an .npz with `x` (N, ...) and integer labels `y` (N,); never unpickles.

    Sizes come from the zip directory and the .npy headers and are checked (element budget, sample count)
    before any array is decompressed, so a zip bomb is refused, not expanded.
    """
    limits.check_upload_size(data, name)
    members = {info.filename: info for info in limits.zip_members(data, name, _MAX_NPZ_MEMBERS, ".npz archive")}
    missing = [k for k in ("x", "y") if f"{k}.npy" not in members]
    if missing:
        raise InputError(f"{name} must hold arrays 'x' and 'y'; missing {', '.join(missing)}")
    budget = limits.ElementBudget(name)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            x_spec = _npy_header(archive, members["x.npy"], name, "x")
            y_spec = _npy_header(archive, members["y.npy"], name, "y")
            x_shape, y_shape = x_spec[0], y_spec[0]
            if x_spec[2].kind not in "fiub" or len(x_shape) < 2:
                raise InputError(f"{name}: 'x' must be a numeric array with one row per sample (N × ...), "
                                 f"got {x_spec[2]} of shape {readable.shape(x_shape)}")
            if len(y_shape) != 1 or y_spec[2].kind not in "iu":
                raise InputError(f"{name}: 'y' must hold integer class labels, one per sample (shape N), "
                                 f"got {y_spec[2]} of shape {readable.shape(y_shape)}")
            if x_shape[0] != y_shape[0]:
                raise InputError(f"{name}: 'x' has {x_shape[0]} samples but 'y' has {y_shape[0]}")
            if not 0 < y_shape[0] <= MAX_NPZ_SAMPLES:
                raise InputError(f"{name}: need between 1 and {MAX_NPZ_SAMPLES} samples, got {y_shape[0]}")
            budget.add(limits.numel(x_shape, name), f"'x' has shape {readable.shape(x_shape)}")
            budget.add(y_shape[0], f"'y' has shape {readable.shape(y_shape)}")
            x = _npy_body(archive, members["x.npy"], x_spec, name, "x")
            y = _npy_body(archive, members["y.npy"], y_spec, name, "y")
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
        # damaged, encrypted or oddly compressed members
        raise InputError(f"{name} is not a readable .npz archive ({type(exc).__name__})") from exc
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise InputError(f"{name}: 'x' contains NaN or Inf")
    if classes is not None and not 0 < classes <= MAX_CLASSES:
        raise InputError(f"{name}: the model declares {classes} classes; at most {MAX_CLASSES} are supported")
    low, high = int(y.min()), int(y.max())
    n_classes = classes if classes is not None else high + 1
    if low < 0 or high >= n_classes:
        raise InputError(f"{name}: labels must lie in [0, {n_classes - 1}], got [{low}, {high}]")
    if n_classes > MAX_CLASSES:  # labels name the classes when the model does not say how many it has
        raise InputError(f"{name}: labels go up to {high}; at most {MAX_CLASSES} classes are supported")
    labels = tuple(str(i) for i in range(n_classes))
    return Dataset(name, _frozen(x), _frozen(y.astype(np.int64)), labels)


_MAX_NPZ_MEMBERS = 64  # x, y and perhaps a few more arrays


def _npy_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, key: str):
    """(shape, fortran_order, dtype, header bytes) from a member's .npy header, read without reading its data."""
    try:
        with archive.open(info) as f:
            version = np.lib.format.read_magic(f)
            read = {(1, 0): np.lib.format.read_array_header_1_0,
                    (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read is None:
                raise InputError(f"{name}: '{key}' uses .npy format version {version}, which is not supported")
            shape, fortran, dtype = read(f)
            header_size = f.tell()
    except ValueError as exc:  # bad magic, a malformed header, or a dtype that would need pickle
        raise InputError(f"{name}: '{key}' is not a plain numeric array ({str(exc).splitlines()[0][:80]})") from exc
    if dtype.hasobject or dtype.kind not in "fiub" or dtype.itemsize > 16 or dtype.shape:
        raise InputError(f"{name}: arrays must be numeric, not {dtype}")
    limits.numel(list(shape), f"{name}: '{key}'")
    return shape, fortran, dtype, header_size


def _npy_body(archive: zipfile.ZipFile, info: zipfile.ZipInfo, spec, name: str, key: str) -> np.ndarray:
    """The array data of a member whose header was checked: exactly the bytes its shape needs, no more."""
    shape, fortran, dtype, header_size = spec
    size = math.prod(shape) * dtype.itemsize
    with archive.open(info) as f:
        f.read(header_size)
        raw = f.read(size)
    if len(raw) != size:
        raise InputError(f"{name}: '{key}' is truncated ({len(raw)} of {size} bytes)")
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _frozen(array: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).clone()
