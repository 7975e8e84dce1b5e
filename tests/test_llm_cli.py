"""`python -m compression lm`: JSON keys, the run history, written files, one-line errors; the tiny GPT."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT
from llm_helpers import TEXT, tiny_llama

from compression.cli import main
from compression.history.store import RunStore
from compression.llm import load_hf_folder, load_tiny_gpt, perplexity, unpack

KEYS = {"perplexity", "baseline_perplexity", "size_bytes", "baseline_size_bytes", "seconds", "config", "tokens",
        "layer_errors"}


@pytest.fixture(scope="module")
def folder_and_text(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lm")
    from compression.llm import save_hf_folder

    save_hf_folder(tiny_llama(), tmp / "model")
    (tmp / "text.txt").write_text(TEXT)
    return tmp / "model", tmp / "text.txt"


def small(folder, text, *extra):
    return ["lm", "--model", str(folder), "--text", str(text), "--samples", "4", "--eval-samples", "2",
            "--seq-len", "32", "--json", *extra]


@pytest.mark.parametrize("method, extra", [("wanda", ["--nm", "2:4"]), ("gptq", ["--bits", "3", "--group-size", "32"]),
                                           ("smoothquant", ["--alpha", "0.8"]), ("rtn", ["--group-size", "16"])])
def test_lm_prints_the_measured_json_and_records_the_run(folder_and_text, capsys, method, extra):
    folder, text = folder_and_text
    assert main(small(folder, text, "--method", method, *extra)) == 0
    payload = json.loads(capsys.readouterr().out)
    assert KEYS <= set(payload) and payload["config"]["method" if method != "smoothquant" else "smooth"]
    assert payload["size_bytes"] < payload["baseline_size_bytes"] and payload["tokens"] == 2 * 31
    assert payload["run_id"] in {run.id for run in RunStore().runs(kind="lm")}


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


@pytest.mark.parametrize("argv, message", [
    (["--method", "wanda", "--sparsity", "1.5"], "sparsity must be in"),
    (["--method", "gptq", "--group-size", "48"], "divide"),
    (["--method", "wanda", "--nm", "2-4"], "--nm must look like 2:4"),
    (["--method", "rtn", "--bits", "1"], "bits must be"),
])
def test_bad_input_exits_non_zero_with_one_line(folder_and_text, capsys, argv, message):
    folder, text = folder_and_text
    assert main(small(folder, text, *argv)) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


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
