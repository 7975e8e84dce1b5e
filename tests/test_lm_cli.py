"""`python -m compression lm`: JSON keys, the run history, written files, one-line errors; the tiny GPT."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import ROOT
from lm_helpers import TEXT, tiny_gpt2, tiny_llama

from compression.cli import main
from compression.history.store import RunStore
from compression.lm import load_hf_folder, load_tiny_gpt, perplexity, save_hf_folder
from compression.pipeline import config_from_dict, lm_config, unpack

KEYS = {"perplexity", "baseline_perplexity", "size_bytes", "baseline_size_bytes", "seconds", "config", "tokens",
        "layer_errors"}


@pytest.fixture(scope="module")
def folder_and_text(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lm")
    save_hf_folder(tiny_llama(), tmp / "model")
    (tmp / "text.txt").write_text(TEXT)
    return tmp / "model", tmp / "text.txt"


def small(folder, text, *extra):
    return ["lm", "--model", str(folder), "--text", str(text), "--samples", "4", "--eval-samples", "2",
            "--seq-len", "32", "--json", *extra]


# (method, flags, the config the flags stand for)
RUNS = [
    ("wanda", ["--nm", "2:4"], lm_config("wanda", nm=(2, 4))),
    ("gptq", ["--bits", "3", "--group-size", "32", "--no-act-order"],
     lm_config("gptq", bits=3, group_size=32, act_order=False)),
    ("smoothquant", ["--alpha", "0.8"], lm_config("smoothquant", alpha=0.8)),
    ("rtn", ["--group-size", "48"], lm_config("rtn", group_size=48)),  # 64 inputs: groups of 48 and 16
    ("magnitude", ["--scope", "layer", "--sparsity", "0.3"], lm_config("magnitude", 0.3, scope="layer")),
]


@pytest.mark.parametrize("method, extra, config", RUNS, ids=[r[0] for r in RUNS])
def test_lm_prints_the_measured_json_and_records_the_run(folder_and_text, capsys, method, extra, config):
    folder, text = folder_and_text
    assert main(small(folder, text, "--method", method, *extra)) == 0
    payload = json.loads(capsys.readouterr().out)
    assert KEYS <= set(payload) and config_from_dict(payload["config"]) == config
    assert payload["size_bytes"] < payload["baseline_size_bytes"] and payload["tokens"] == 2 * 31
    assert payload["run_id"] in {run.id for run in RunStore().runs(kind="lm")}


def test_a_recorded_cli_run_shows_on_the_page_with_its_noise(folder_and_text, capsys):
    from ui.lm_runs import row_from_run  # the page's reading of a recorded run

    folder, text = folder_and_text
    assert main(small(folder, text, "--method", "rtn", "--bits", "4")) == 0
    run = RunStore().get(json.loads(capsys.readouterr().out)["run_id"])
    row = row_from_run(run)
    assert row["windows"] == 2 and row["nll_se"] > 0 and row["calibration_tokens"] == 4 * 32  # its 95% range


def test_lm_writes_a_folder_and_a_packed_file(folder_and_text, tmp_path, capsys):
    folder, text = folder_and_text
    args = small(folder, text, "--method", "sparsegpt", "--out", str(tmp_path / "out"), "--packed-out",
                 str(tmp_path / "m.cllm"), "--prompt", "In the", "--no-record")
    assert main(args) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["run_id"] is None and isinstance(payload["generation"], str)
    assert len((tmp_path / "m.cllm").read_bytes()) == payload["size_bytes"]
    assert "model.layers.0.mlp.down_proj.weight" in unpack((tmp_path / "m.cllm").read_bytes())
    assert load_hf_folder(tmp_path / "out").info.params == payload["model_info"]["params"]


def test_a_gpt2_packed_file_decodes_to_the_folder_written_beside_it(folder_and_text, tmp_path, capsys):
    _, text = folder_and_text
    save_hf_folder(tiny_gpt2(), tmp_path / "gpt2")
    args = small(tmp_path / "gpt2", text, "--method", "gptq", "--group-size", "32", "--out", str(tmp_path / "out"),
                 "--packed-out", str(tmp_path / "m.safetensors"), "--no-record")
    assert main(args) == 0
    capsys.readouterr()
    decoded = unpack((tmp_path / "m.safetensors").read_bytes())
    state = load_hf_folder(tmp_path / "out").model.state_dict()
    conv1d = "transformer.h.0.mlp.c_fc.weight"  # stored (out, in) in the file, read back in Conv1D's (in, out)
    assert decoded[conv1d].shape == state[conv1d].shape == (64, 256) and torch.equal(decoded[conv1d], state[conv1d])
    for name, tensor in decoded.items():
        torch.testing.assert_close(tensor, state[name], atol=2e-3 * state[name].abs().max().item() + 1e-6, rtol=1e-3)


@pytest.mark.parametrize("argv, message", [
    (["--method", "wanda", "--sparsity", "1.5"], "must be in [0, 1], got 1.5"),
    (["--method", "gptq", "--group-size", "-1"], "group size must be a positive integer"),
    (["--method", "wanda", "--nm", "5:4"], "N:M needs 1 <= N <= M <= 64"),
    (["--method", "wanda", "--nm", "2-4"], "--nm must look like 2:4"),
    (["--method", "rtn", "--bits", "17"], "bits must be an integer from 1 to 16"),
])
def test_bad_input_exits_non_zero_with_one_line(folder_and_text, capsys, argv, message):
    folder, text = folder_and_text
    assert main(small(folder, text, *argv)) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_the_scope_is_per_row_or_per_layer_only(folder_and_text, capsys):
    folder, text = folder_and_text
    with pytest.raises(SystemExit):
        main(small(folder, text, "--method", "magnitude", "--scope", "global"))
    assert "invalid choice: 'global'" in capsys.readouterr().err


def test_a_missing_model_is_one_line_from_a_real_process():
    out = subprocess.run([sys.executable, "-m", "compression", "lm", "--model", "nowhere", "--method", "rtn"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode != 0 and out.stderr.strip().count("\n") == 0 and "nowhere" in out.stderr


def test_the_tiny_gpt_trains_once_and_reads_english_text():
    lm = load_tiny_gpt()  # trained on first use (under a minute), then cached
    assert 0.5e6 < lm.info.params < 1.5e6 and lm.info.architecture == "gpt2"
    ids = lm.tokenizer("And God said, Let there be light: and there was light. And God saw the light, that it was good",
                       return_tensors="pt")["input_ids"]
    assert perplexity(lm.model, ids).perplexity < 8  # a uniform guess over ~75 characters would be ~75
