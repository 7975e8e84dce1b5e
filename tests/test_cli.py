import io
import json
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, onnx_upload
from safetensors.torch import load_file


def cli(*args: str):
    return subprocess.run([sys.executable, "-m", "compression", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_info_prints_the_models_facts_as_json(zoo):
    zoo("mlp")  # train in-process first so the subprocess finds the cache
    result = cli("info", "--model", "mlp", "--json")
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["params"] == 64 * 100 + 100 + 100 * 10 + 10
    assert facts["dataset"] == "digits" and 0.9 < facts["accuracy"] <= 1
    assert facts["size_bytes"] > 4 * facts["params"]


def test_export_writes_the_state_dict_names_and_info_reads_it_back(zoo, tmp_path):
    model = zoo("cnn")
    out = tmp_path / "cnn.safetensors"
    assert cli("export", "--model", "cnn", "--out", str(out)).returncode == 0
    written = load_file(str(out))
    assert set(written) == set(model.module.state_dict())
    assert all(torch.equal(written[k], v) for k, v in model.module.state_dict().items())
    back = cli("info", "--model", str(out), "--arch", "cnn", "--json")
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["accuracy"] == pytest.approx(model.evaluate().accuracy)


def test_onnx_model_with_its_data(zoo, tmp_path):
    model = zoo("mlp")
    onnx_path, npz_path = tmp_path / "m.onnx", tmp_path / "eval.npz"
    onnx_file, npz_file = onnx_upload(model)
    onnx_path.write_bytes(onnx_file)
    npz_path.write_bytes(npz_file)
    result = cli("info", "--model", str(onnx_path), "--data", str(npz_path), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["accuracy"] == pytest.approx(model.evaluate().accuracy)


def test_custom_architecture_from_module_function(zoo, tmp_path):
    (tmp_path / "mynets.py").write_text(
        "from compression.models.architectures import MLP\n"
        "def build():\n    return MLP(64, (100,), 10)\n")
    weights = tmp_path / "w.safetensors"
    assert cli("export", "--model", "mlp", "--out", str(weights)).returncode == 0
    result = subprocess.run([sys.executable, "-m", "compression", "info", "--arch-factory", "mynets:build",
                             "--weights", str(weights), "--data", "digits", "--json"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300,
                            env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["accuracy"] == pytest.approx(zoo("mlp").evaluate().accuracy)


@pytest.mark.parametrize("args, reason", [
    (("info", "--model", "resnet"), "neither a zoo model"),
    (("info", "--model", "README.md"), "needs --arch"),
    (("info", "--arch-factory", "nope:build", "--data", "digits"), "cannot import"),
    (("export", "--model", "mlp", "--out", "x.bin"), "must end in .safetensors"),
])
def test_errors_exit_non_zero_with_one_line(args, reason, zoo):
    zoo("mlp")
    result = cli(*args)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and reason in lines[0]


def test_a_malicious_file_on_the_cli_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("hacked",))

    path = tmp_path / "evil.pt"
    buffer = io.BytesIO()
    torch.save({"fc1.weight": Evil()}, buffer)
    path.write_bytes(buffer.getvalue())
    result = cli("info", "--model", str(path), "--arch", "mlp")
    assert result.returncode == 2 and "hacked" not in result.stdout and "refused" in result.stderr


def test_runs_list_gives_each_run_its_own_measure(tmp_path, monkeypatch, capsys):
    from compression.cli import main
    from compression.history import Run, RunStore

    monkeypatch.setenv("COMPRESSION_LAB_DATA", str(tmp_path))
    monkeypatch.delenv("COMPRESSION_LAB_DB_URL", raising=False)
    store = RunStore()
    store.record(Run(kind="prune", model="mlp", config={"method": "sparsegpt", "sparsity": 0.8},
                     metrics={"accuracy": 0.9528, "size_bytes": 32201}))
    store.record(Run(kind="lm", model="tiny-gpt", config={"method": "gptq", "bits": 3},
                     metrics={"perplexity": 4.987, "baseline_perplexity": 4.95, "size_bytes": 403928}))
    assert main(["runs", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    lm, prune = (next(line for line in lines if f" {kind} " in line) for kind in ("lm", "prune"))
    assert "perplexity 4.99" in lm and "accuracy" not in lm  # a language model is never ranked by accuracy
    assert "accuracy 0.9528" in prune and "done" in prune
