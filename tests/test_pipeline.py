import json
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, drain, state_checksum

from compression.core.errors import InputError
from compression.history.store import RunStore
from compression.models.loading import load_clab
from compression.pipeline.run import PipelineConfig, run_pipeline


def _run(model, config):
    progress, result = drain(run_pipeline(model, config))
    return result, progress


def test_prune_quantize_encode_gives_a_small_file_that_decodes_to_the_measured_model(zoo):
    model = zoo("mlp")
    before = state_checksum(model.module)
    result, progress = _run(model, PipelineConfig(sparsity=0.9, codebook_bits=4, finetune_epochs=30, quant_epochs=3))
    assert [s.name for s in result.stages] == ["prune", "quantize", "encode"]
    assert progress[0].fraction == 0 and all(0 <= p.fraction <= 1 for p in progress)
    assert result.size_bytes == len(result.file) and result.compression_ratio > 12
    decoded = load_clab(result.file)
    assert decoded.evaluate().accuracy == result.accuracy  # the accuracy shown is the decoded file's
    weights = decoded.weights()
    nonzero = sum(int(torch.count_nonzero(w)) for w in weights.values())
    assert nonzero <= 0.1 * sum(w.numel() for w in weights.values()) + 1
    assert all(len(torch.unique(w[w != 0])) <= 16 for w in weights.values())  # 4-bit shared values
    assert result.accuracy > result.baseline_accuracy - 0.03
    assert state_checksum(model.module) == before  # the input model is untouched


def test_distill_step_shrinks_the_architecture(zoo):
    result, _ = _run(zoo("mlp-wide"), PipelineConfig(steps=("distill", "quantize", "encode"), student_hidden=(24,),
                                                     distill_epochs=5, quant_epochs=1, codebook_bits=5))
    decoded = load_clab(result.file)
    assert decoded.module.fc1.out_features == 24 and result.accuracy == decoded.evaluate().accuracy


@pytest.mark.parametrize("steps, message", [
    (("quantize", "prune"), "order"),
    (("prune", "encode"), "quantize step before"),
    (("prune", "fold"), "steps must be some of"),
])
def test_bad_step_lists_are_explained(steps, message):
    with pytest.raises(InputError, match=message):
        PipelineConfig(steps=steps)


def test_cancelling_mid_pipeline_leaves_the_model_untouched(zoo):
    model = zoo("mlp")
    before = state_checksum(model.module)
    gen = run_pipeline(model, PipelineConfig(finetune_epochs=50))
    for _ in range(5):
        next(gen)
    gen.close()
    assert state_checksum(model.module) == before


def test_cli_pipeline_writes_the_file_and_records_the_run(zoo, tmp_path):
    zoo("mlp")
    out = tmp_path / "mlp.clab"
    env = {**__import__("os").environ, "COMPRESSION_LAB_DATA": str(tmp_path / "data")}
    result = subprocess.run([sys.executable, "-m", "compression", "pipeline", "--model", "mlp", "--steps",
                             "prune,quantize,encode", "--finetune-epochs", "20", "--quant-epochs", "2",
                             "--out", str(out), "--json"], capture_output=True, text=True, cwd=ROOT, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["size_bytes"] == out.stat().st_size
    assert payload["compression_ratio"] == pytest.approx(payload["baseline_size_bytes"] / payload["size_bytes"])
    assert {"accuracy", "baseline_accuracy"} <= set(payload)
    listed = subprocess.run([sys.executable, "-m", "compression", "runs", "list", "--json"], capture_output=True,
                            text=True, cwd=ROOT, env=env, timeout=120)
    [run] = json.loads(listed.stdout)["runs"]
    assert run["id"] == payload["run_id"] and run["kind"] == "pipeline"
    stored = RunStore(tmp_path / "data" / "runs.sqlite").get(run["id"])
    assert stored.file == out.read_bytes()
    info = subprocess.run([sys.executable, "-m", "compression", "info", "--model", str(out), "--json"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert info.returncode == 0, info.stderr  # a .clab names its own architecture: no --arch needed
    assert json.loads(info.stdout)["accuracy"] == pytest.approx(payload["accuracy"])
    bad = subprocess.run([sys.executable, "-m", "compression", "pipeline", "--model", "mlp", "--steps",
                          "encode"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert bad.returncode == 2 and "quantize step before" in bad.stderr
