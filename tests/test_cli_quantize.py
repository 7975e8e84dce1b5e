"""`python -m compression quantize`: JSON keys, --out on the grid under export's names, packed file, bad input."""

import json

import torch
from safetensors.torch import load_file

from compression.cli import main
from compression.quantization import load_packed


def test_quantize_json_out_and_packed_file(zoo, tmp_path, capsys):
    model = zoo("mlp")
    out, packed = tmp_path / "q.safetensors", tmp_path / "q.packed.safetensors"
    code = main(["quantize", "--model", "mlp", "--bits", "3", "--granularity", "per-tensor", "--asymmetric",
                 "--out", str(out), "--packed-out", str(packed), "--json"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["bits"] == 3 and 0 < payload["accuracy"] <= 1
    assert payload["baseline_accuracy"] == model.evaluate().accuracy
    assert payload["size_bytes"] == packed.stat().st_size < payload["baseline_size_bytes"] / 6
    written = load_file(str(out))
    assert set(written) == set(model.module.state_dict())  # export's names
    decoded = load_packed(packed.read_bytes())
    assert all(torch.equal(written[k], decoded[k]) for k in written)
    levels = torch.unique(written["fc1.weight"])
    assert len(levels) <= 8  # 3 bits per tensor: at most 8 distinct values, all on one grid
    steps = torch.diff(levels) / torch.diff(levels).min()
    assert torch.allclose(steps, steps.round(), atol=1e-3)


def test_activations_and_qat_flags(zoo, capsys):
    zoo("mlp")
    assert main(["quantize", "--model", "mlp", "--bits", "2", "--qat-epochs", "1", "--activations", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["qat_epochs"] == 1 and "ptq_accuracy" in payload and payload["activation_bits"] == 8


def test_bad_bits_exit_2_with_one_line(zoo, capsys):
    zoo("mlp")
    assert main(["quantize", "--model", "mlp", "--bits", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bits must be an integer from 1 to 16" in err
