"""Issue 10's hostile files through the engine (in a child limited to 2 GiB), the CLI and the Model page."""

import io
import json
import zipfile

import hostile
import pytest
import torch
from conftest import ROOT, onnx_upload
from safetensors.torch import save as st_save
from streamlit.testing.v1 import AppTest

from compression.core.errors import InputError, LimitExceeded
from compression.formats import clab, huffman
from compression.models.architectures import MLP
from compression.models.safe_load import read_state_dict

CASES = list(hostile.CASES)


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    hostile.write_all(folder)
    return folder


@pytest.fixture(scope="module")
def engine_results(hostile_dir):
    result = hostile.run_limited(["tests/hostile.py", str(hostile_dir)])
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.mark.parametrize("case", CASES)
def test_the_engine_refuses_each_hostile_file_before_allocating(case, engine_results):
    kind, message, grown_mib = engine_results[case]
    assert kind in ("InputError", "LimitExceeded"), (kind, message)
    assert hostile.CASES[case][2] in message
    assert "\n" not in message
    assert grown_mib < 64  # the peak RSS barely moved: nothing was allocated for what the file declares


def _cli_args(case, folder):
    kind, files, _ = hostile.CASES[case]
    paths = [str(folder / case / name) for name, _ in files]
    if kind == "weights":
        return ["info", "--model", paths[0], "--arch", "mlp", "--json"]
    return ["info", "--model", paths[0], "--data", paths[1], "--json"]


@pytest.mark.parametrize("case", ["clab-giant-shape", "clab-code-length-40", "npz-bomb", "pt-stride-zero-view"])
def test_the_cli_exits_non_zero_with_one_line_and_no_traceback(case, hostile_dir):
    result = hostile.run_limited(["-m", "compression", *_cli_args(case, hostile_dir)])
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and hostile.CASES[case][2] in lines[0]


@pytest.mark.parametrize("case", CASES)
def test_the_cli_error_path_for_every_case(case, hostile_dir, capsys):
    from compression.cli import main

    assert main(_cli_args(case, hostile_dir)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and hostile.CASES[case][2] in err


def test_the_cli_checks_a_files_size_before_reading_it(tmp_path, monkeypatch, capsys):
    from compression.cli import main

    monkeypatch.setenv("COMPRESSION_LAB_MAX_UPLOAD_MB", "1")
    big = tmp_path / "big.clab"
    big.write_bytes(b"\0" * (2 << 20))
    assert main(["info", "--model", str(big), "--json"]) == 2
    assert "over the 1 MiB limit" in capsys.readouterr().err


def _app(model: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.session_state["model"] = model
    return at.run()


def _metrics(at: AppTest) -> dict:
    return {m.label: m.value for m in at.metric}


@pytest.mark.parametrize("case", CASES)
def test_the_model_page_explains_and_keeps_the_previous_model(case, hostile_dir, zoo):
    kind, files, message = hostile.CASES[case]
    names = [name for name, _ in files]
    data = [(hostile_dir / case / name).read_bytes() for name in names]
    if kind == "weights":
        at = _app("Upload weights…")
        at.sidebar.file_uploader(key="upload_weights_file").upload(
            "good.safetensors", st_save(MLP(64, (40,), 10).state_dict()))
        before = _metrics(at.run())
        at.sidebar.file_uploader(key="upload_weights_file").upload(names[0], data[0])
    else:
        good_onnx, good_npz = onnx_upload(zoo("mlp"))
        at = _app("Upload ONNX…")
        at.sidebar.file_uploader(key="upload_onnx_file").upload("good.onnx", good_onnx)
        at.sidebar.file_uploader(key="upload_npz_file").upload("good.npz", good_npz)
        before = _metrics(at.run())
        at.sidebar.file_uploader(key="upload_onnx_file").upload(names[0], data[0])
        at.sidebar.file_uploader(key="upload_npz_file").upload(names[1], data[1])
    at.run()
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert "Parameters" in before and _metrics(at) == before  # the model loaded before is still the one shown


def test_an_upload_over_the_size_cap_is_refused_on_the_page(monkeypatch):
    monkeypatch.setenv("COMPRESSION_LAB_MAX_UPLOAD_MB", "1")
    at = _app("Upload weights…")
    at.sidebar.file_uploader(key="upload_weights_file").upload("big.clab", b"CLAB" + b"\0" * (2 << 20))
    at.run()
    assert not at.exception and any("over the 1 MiB limit" in e.value for e in at.error)


# Engine checks that need no child: the refusals happen before anything large is asked for.

def test_huffman_lengths_must_form_a_prefix_code():
    with pytest.raises(InputError, match="Kraft"):
        huffman.check_lengths([1, 1, 1], 3)
    with pytest.raises(InputError, match="0 to 16"):
        huffman.check_lengths([17, 1], 2)
    with pytest.raises(InputError, match="truncated"):
        huffman.decode(b"\0", [1, 1], 9)  # 9 one-bit symbols cannot fit in 8 bits


def test_a_clab_tensor_without_positions_must_keep_every_weight():
    entry = {"n": "w", "s": [4096, 4096], "b": 5, "e": "hc", "k": 1, "nnz": 1, "cl": [1], "cb": 1}
    with pytest.raises(InputError, match="without positions must keep all"):
        clab.decode(hostile.clab_file({"arch": "mlp", "t": [entry]}, b"\0" * 5))


def test_a_clab_count_above_the_elements_is_refused():
    entry = {"n": "w", "s": [2, 2], "b": 5, "e": "hc", "k": 1, "nnz": 5, "cl": [1], "cb": 1}
    with pytest.raises(InputError, match="'nnz' must be an integer in \\[0, 4\\]"):
        clab.decode(hostile.clab_file({"arch": "mlp", "t": [entry]}, b"\0" * 5))


def test_the_element_budget_is_settable(monkeypatch):
    data = st_save(MLP(64, (100,), 10).state_dict())
    assert len(read_state_dict(data, "w.safetensors")) == 4
    monkeypatch.setenv("COMPRESSION_LAB_MAX_ELEMENTS", "1000")
    with pytest.raises(LimitExceeded, match="1,000 tensor elements"):
        read_state_dict(data, "w.safetensors")
    monkeypatch.setenv("COMPRESSION_LAB_MAX_ELEMENTS", "lots")
    with pytest.raises(InputError, match="COMPRESSION_LAB_MAX_ELEMENTS must be a positive whole number"):
        read_state_dict(data, "w.safetensors")


def test_pickled_state_dicts_are_refused_on_torch_before_2_10(monkeypatch):
    buffer = io.BytesIO()
    torch.save(MLP(64, (100,), 10).state_dict(), buffer)
    monkeypatch.setattr(torch, "__version__", "2.5.1")
    with pytest.raises(InputError, match="torch 2.5.1.*fixed in 2.10"):
        read_state_dict(buffer.getvalue(), "w.pt")
    assert read_state_dict(st_save(MLP(64, (100,), 10).state_dict()), "w.safetensors")  # safetensors still reads


def test_a_torch_archive_with_compressed_records_is_refused():
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(3)}, buffer)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    with pytest.raises(InputError, match="uncompressed"):
        read_state_dict(out.getvalue(), "w.pt")

