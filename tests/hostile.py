"""Hostile files, one per class of issue 10, with valid checksums so each reaches the decoder's own checks.

Each builder returns (upload kind, files, what the refusal must say); "weights" files go to load_weights
(the sidebar's weights uploader, `info --model FILE --arch mlp`), "onnx" pairs to load_onnx_with_data.
`python tests/hostile.py DIR` loads every case written by write_all(DIR) through the engine (run it under
RLIMIT_AS) and prints JSON.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CLAB_PREFIX = struct.Struct(">4sHII")


def clab_file(header: dict, blobs: bytes = b"", raw_header: bytes | None = None) -> bytes:
    """A .clab file with this JSON header and these blobs, its CRC recomputed."""
    packed = raw_header if raw_header is not None else zlib.compress(json.dumps(header).encode())
    body = packed + blobs
    return CLAB_PREFIX.pack(b"CLAB", 1, len(packed), zlib.crc32(body)) + body


def _coded(name: str, shape: list[int], **fields) -> dict:
    """A Huffman-coded .clab entry with no weights kept (nnz 0) unless fields say otherwise."""
    entry = {"n": name, "s": shape, "b": 4, "e": "hc", "k": 1, "nnz": 0, "cl": [1], "cb": 0,
             "ib": 1, "ni": 0, "il": [0, 0]}
    entry.update(fields)
    return entry


def clab_giant_shape() -> bytes:
    """130 bytes, valid CRC, a 100000 x 100000 tensor: the old decoder asked numpy for 37 GiB."""
    return clab_file({"arch": "mlp", "t": [_coded("fc1.weight", [100000, 100000])]}, b"\0" * 4)


def clab_code_length_40() -> bytes:
    """A Huffman code length of 40: the old decoder built a 2**40-entry table (8 TiB)."""
    return clab_file({"arch": "mlp", "t": [_coded("fc1.weight", [100, 64], b=9, nnz=1, cl=[40], cb=5)]}, b"\0" * 9)


def clab_coded_without_index() -> bytes:
    """A coded tensor without index data and few codes: the old decoder ran arange(numel) first."""
    entry = _coded("fc1.weight", [1 << 20, 1 << 12], nnz=1, cb=1)
    for key in ("ib", "ni", "il"):
        del entry[key]
    return clab_file({"arch": "mlp", "t": [entry]}, b"\0" * 5)


def clab_header_bomb() -> bytes:
    """A JSON header that inflates to 64 MiB (spaces), from about 64 kB."""
    inflater = zlib.compressobj(9)
    chunk = b" " * (1 << 20)
    packed = inflater.compress(b'{"arch": "mlp", "t": []' + chunk) + b"".join(
        inflater.compress(chunk) for _ in range(63)) + inflater.compress(b"}") + inflater.flush()
    return clab_file({}, raw_header=packed)


def clab_deep_header() -> bytes:
    """Metadata nested 100000 levels deep."""
    raw = b'{"arch": "mlp", "t": [], "meta": ' + b"[" * 100000 + b"]" * 100000 + b"}"
    return clab_file({}, raw_header=zlib.compress(raw))


def clab_model_too_big() -> bytes:
    """Shapes that pass load_into and the decoder's budget (zero-sized fc1) yet infer a 10**6-unit hidden layer."""
    hidden = 10 ** 6
    return clab_file({"arch": "mlp", "t": [
        {"n": "fc1.weight", "s": [hidden, 0], "b": 0, "e": "raw"},
        _coded("fc1.bias", [hidden]), _coded("fc2.weight", [10, 0]), _coded("fc2.bias", [10])]}, b"\0" * 12)


def _npy(array_header: dict, data: bytes) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, array_header)
    return out.getvalue() + data


def npz_bomb() -> bytes:
    """About 250 kB that inflates to 256 MiB: x declared (2**20, 64) float32, all zeros."""
    rows = 1 << 20
    x_header = _npy({"descr": "<f4", "fortran_order": False, "shape": (rows, 64)}, b"")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as f:
            f.write(x_header)
            zeros = b"\0" * (1 << 24)
            for _ in range(rows * 64 * 4 // len(zeros)):
                f.write(zeros)
        archive.writestr("y.npy", _npy({"descr": "<i8", "fortran_order": False, "shape": (rows,)}, b""))
    return out.getvalue()


def npz_huge_label() -> bytes:
    out = io.BytesIO()
    np.savez(out, x=np.zeros((4, 64), np.float32), y=np.array([0, 1, 2, 1 << 40]))
    return out.getvalue()


def npz_good() -> bytes:
    out = io.BytesIO()
    np.savez(out, x=np.zeros((4, 64), np.float32), y=np.array([0, 1, 2, 3]))
    return out.getvalue()


def onnx_symbolic_classes(constant_bomb: bool = False) -> bytes:
    """x (N, 64) @ W (64, 10) with the class dimension symbolic; optionally plus a ConstantOfShape of 10**10."""
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.zeros((64, 10), np.float32), "W")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["logits" if not constant_bomb else "mm"])]
    inits = [weight]
    if constant_bomb:
        inits.append(numpy_helper.from_array(np.array([100000, 100000], np.int64), "shape"))
        nodes += [helper.make_node("ConstantOfShape", ["shape"], ["big"],
                                   value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.0])),
                  helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
                  helper.make_node("Add", ["mm", "total"], ["logits"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", "classes"])],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()


def safetensors_deep_header() -> bytes:
    header = b'{"a": ' + b"[" * 100000 + b"]" * 100000 + b"}"
    return struct.pack("<Q", len(header)) + header


def safetensors_header_past_end() -> bytes:
    return struct.pack("<Q", 1 << 40) + b"{}"


def pt_stride_zero_view() -> bytes:
    """A weights-only state dict whose tensor is a (10**6, 10**6) stride-0 view of one float."""
    import torch

    buffer = io.BytesIO()
    torch.save({"fc1.weight": torch.zeros(1).expand(10 ** 6, 10 ** 6)}, buffer)
    return buffer.getvalue()


MEMORY_LIMIT = 2 << 30  # bytes of address space for a child: asking numpy for gigabytes fails, not passes by luck


def run_limited(args: list[str], timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """Run `python ARGS` from the checkout with RLIMIT_AS at MEMORY_LIMIT and one thread per pool."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    child_env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2", **env}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=child_env, preexec_fn=limit, capture_output=True,
                          text=True, timeout=timeout)


# name -> (kind, (file name, bytes builder)..., a fragment of the refusal)
CASES = {
    "clab-giant-shape": ("weights", [("giant.clab", clab_giant_shape)], "tensor elements"),
    "clab-code-length-40": ("weights", [("len40.clab", clab_code_length_40)], "code lengths"),
    "clab-coded-without-index": ("weights", [("noindex.clab", clab_coded_without_index)], "elements"),
    "clab-header-bomb": ("weights", [("bomb.clab", clab_header_bomb)], "decompresses to more than"),
    "clab-deep-header": ("weights", [("deep.clab", clab_deep_header)], "nested"),
    "clab-model-too-big": ("weights", [("big-model.clab", clab_model_too_big)], "parameters; the limit"),
    "npz-bomb": ("onnx", [("m.onnx", onnx_symbolic_classes), ("bomb.npz", npz_bomb)], "samples"),
    "npz-huge-label": ("onnx", [("m.onnx", onnx_symbolic_classes), ("label.npz", npz_huge_label)],
                       "classes are supported"),
    "onnx-constant-bomb": ("onnx", [("bomb.onnx", lambda: onnx_symbolic_classes(True)), ("d.npz", npz_good)],
                           "would hold"),
    "safetensors-deep-header": ("weights", [("deep.safetensors", safetensors_deep_header)], "nested"),
    "safetensors-header-past-end": ("weights", [("past.safetensors", safetensors_header_past_end)],
                                    "runs past the end"),
    "pt-stride-zero-view": ("weights", [("view.pt", pt_stride_zero_view)], "tensor elements"),
}


def write_all(folder: Path) -> None:
    """Write every case's files into folder/CASE/."""
    for name, (_, files, _) in CASES.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for file_name, make in files:
            (folder / name / file_name).write_bytes(make())


def files_of(folder: Path, name: str) -> list[tuple[str, bytes]]:
    """A written case's files, in the order CASES lists them."""
    return [(file_name, (folder / name / file_name).read_bytes()) for file_name, _ in CASES[name][1]]


def load(kind: str, files: list[tuple[str, bytes]]):
    """Load a case through the engine, as the Model page and the CLI do."""
    from compression.models.loading import load_onnx_with_data, load_weights

    if kind == "weights":
        return load_weights("mlp", files[0][1], files[0][0])
    (model_name, model), (data_name, data) = files
    return load_onnx_with_data(model, model_name, data, data_name)


def main(folder: Path) -> None:
    """Load every case written in `folder`; print {case: [error type, message, MiB the peak RSS grew]} as JSON."""
    import resource

    import compression.models.loading  # noqa: F401  imported before the first case, whose growth it would count
    from compression.core.errors import InputError

    results = {}
    for name, (kind, _, _) in CASES.items():
        files = files_of(folder, name)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            load(kind, files)
            outcome = ["loaded", ""]
        except InputError as exc:
            outcome = [type(exc).__name__, str(exc)]
        except BaseException as exc:  # noqa: BLE001  the parent test reports what escaped
            outcome = [type(exc).__name__, str(exc)[:300]]
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024  # ru_maxrss is in KiB
        results[name] = [*outcome, round(grown, 1)]
    print(json.dumps(results))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
