"""`python -m compression prune`: the JSON keys, --out under export's tensor names, one-line errors."""

import json

import pytest
from safetensors.torch import load_file

from compression.cli import main

KEYS = {"accuracy", "baseline_accuracy", "sparsity", "params", "nonzero_params", "size_bytes", "baseline_size_bytes"}


def test_prune_json_and_out_use_export_names(zoo, tmp_path, capsys):
    zoo("mlp")
    out = tmp_path / "pruned.safetensors"
    assert main(["prune", "--model", "mlp", "--sparsity", "0.8", "--json", "--out", str(out)]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert KEYS <= set(payload)
    assert payload["sparsity"] == pytest.approx(0.8, abs=1e-3) and payload["nonzero_params"] < payload["params"]
    exported = tmp_path / "dense.safetensors"
    assert main(["export", "--model", "mlp", "--out", str(exported)]) == 0
    pruned, dense = load_file(str(out)), load_file(str(exported))
    assert set(pruned) == set(dense)
    assert int((pruned["fc1.weight"] == 0).sum()) > int((dense["fc1.weight"] == 0).sum())


def test_structured_threshold_and_finetune(zoo, capsys):
    zoo("mlp")
    assert main(["prune", "--model", "mlp", "--method", "structured", "--sparsity", "0.5", "--json"]) == 0
    structured = json.loads(capsys.readouterr().out)
    assert structured["size_bytes"] < structured["baseline_size_bytes"] * 0.6
    assert main(["prune", "--model", "mlp", "--threshold", "0.1", "--finetune-epochs", "1", "--json"]) == 0
    tuned = json.loads(capsys.readouterr().out)
    assert tuned["finetune_epochs"] == 1 and "oneshot_accuracy" in tuned and 0 < tuned["accuracy"] <= 1


@pytest.mark.parametrize("argv, message", [
    (["--sparsity", "1.5"], "must be in [0, 1]"),
    ([], "give --sparsity S, --threshold T or --nm N:M"),
    (["--method", "nm", "--nm", "5:4"], "N:M needs"),
    (["--sparsity", "0.5", "--exclude", "fc1", "--exclude", "fc2"], "every layer is excluded"),
    (["--sparsity", "0.5", "--out", "x.bin"], "--out must end in .safetensors"),
])
def test_bad_arguments_exit_2_with_one_line(zoo, capsys, argv, message):
    zoo("mlp")
    assert main(["prune", "--model", "mlp", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
