"""What a compressed LM buys: the deployed model (real kernels) against the fake-quant one, its save/load for the
measuring child, the measured cost's fields, top-1 accuracy, and the labelled estimates. No wall-time assertions."""

import sys
from pathlib import Path

import pytest
import torch

from compression.core import run_to_end
from compression.core.hardware import (DEVICES, DeviceClass, devices_from_rows, estimate, measure_bandwidth,
                                       predicted_tokens_per_s_here)
from compression.core.errors import InputError
from compression.lm import perplexity
from compression.lm.speed import kv_bytes_per_token, measure_speed
from compression.pipeline import (CostConfig, compress_lm, deploy_dense, deploy_kernels, lm_config, measure_cost,
                                  prompt_ids, run_cost, weight_bytes)
from compression.pipeline.lm_cost import reads_weights
from compression.pipeline.lm_deploy import load_deployed, save_deployed
from compression.quantization import Int4Linear, Int8Embedding, Int8Linear
from lm_helpers import tiny_gpt2, tiny_llama, token_ids

QUICK = CostConfig(prompt_tokens=32, new_tokens=4, repeats=1, threads=1, in_child=False)


def tied_llama():
    """tiny_llama with its output head tied to the embedding, as SmolLM2's is."""
    lm = tiny_llama()
    lm.model.lm_head.weight = lm.model.model.embed_tokens.weight
    lm.model.config.tie_word_embeddings = True
    return lm


@pytest.fixture(scope="module")
def llama():
    return tied_llama()


@pytest.fixture(scope="module")
def rtn4(llama):
    return run_to_end(compress_lm(llama, lm_config("rtn", bits=4, group_size=32)))


def test_perplexity_reports_top1_accuracy(llama):
    ids = token_ids(llama, 2, 32)
    ppl = perplexity(llama.model, ids)
    logits = llama.model(input_ids=ids).logits[:, :-1]
    expected = (logits.argmax(-1) == ids[:, 1:]).float().mean().item()
    assert ppl.top1 == pytest.approx(expected)


@pytest.mark.parametrize("head", ["float", "int8"])
def test_deployed_kernels_agree_with_fake_quant(llama, rtn4, head):
    deployed = deploy_kernels(rtn4, head=head)
    assert deployed.kernels.kernels() == {"int4pack": 14}
    assert isinstance(deployed.model.model.layers[0].mlp.down_proj, Int4Linear)
    if head == "int8":
        assert isinstance(deployed.model.lm_head, Int8Linear)
        assert isinstance(deployed.model.model.embed_tokens, Int8Embedding)
    ids = token_ids(llama, 2, 32)
    fake, real = rtn4.lm.model(input_ids=ids).logits, deployed.model(input_ids=ids).logits
    assert (fake.argmax(-1) == real.argmax(-1)).float().mean() > 0.9
    assert perplexity(deployed.model, ids).perplexity == pytest.approx(perplexity(rtn4.lm.model, ids).perplexity,
                                                                       rel=0.01)


@pytest.mark.parametrize("make", [tiny_llama, tiny_gpt2])
@pytest.mark.parametrize("head", ["float", "int8"])
def test_saved_deployment_rebuilds_the_same_model(tmp_path, make, head):
    lm = make()
    result = run_to_end(compress_lm(lm, lm_config("rtn", bits=8, group_size=0, scheme="symmetric")))
    deployed = deploy_kernels(result, head=head)
    save_deployed(deployed, tmp_path)
    back = load_deployed(tmp_path)
    ids = token_ids(lm, 2, 16)
    assert torch.equal(back(input_ids=ids).logits, deployed.model(input_ids=ids).logits)


def test_dense_save_keeps_tied_weights_tied(tmp_path, llama):
    assert llama.model.lm_head.weight is llama.model.model.embed_tokens.weight
    save_deployed(deploy_dense(llama.model), tmp_path)
    back = load_deployed(tmp_path)
    assert back.lm_head.weight is back.model.embed_tokens.weight
    ids = token_ids(llama, 1, 16)
    assert torch.equal(back(input_ids=ids).logits, llama.model(input_ids=ids).logits)


def test_weight_bytes_count_what_a_token_reads(llama, rtn4):
    per_token, held = weight_bytes(llama.model)
    tensors = [*llama.model.parameters(), *llama.model.buffers()]
    assert held == sum(t.numel() * t.element_size() for t in tensors)
    assert per_token == held  # the tied embedding is the output head: a token reads all of it
    untied = tiny_llama().model
    per_token, held = weight_bytes(untied)
    assert held - per_token == (72 - 1) * 64 * 4  # an embedding of its own: one row of 72 read
    low, _ = weight_bytes(deploy_kernels(rtn4).model)
    assert low < per_token / 2


def test_measure_speed_fields(llama):
    speed = measure_speed(llama.model, token_ids(llama, 1, 24)[0], new_tokens=3, repeats=2)
    assert speed.prompt_tokens == 24 and speed.new_tokens == 3 and speed.repeats == 2
    assert 0 < speed.decode_tokens_per_s_min <= speed.decode_tokens_per_s <= speed.decode_tokens_per_s_max
    assert speed.prefill_tokens_per_s > 0


def test_decode_time_is_split_between_the_weight_layers_and_the_rest(llama, rtn4):
    prompt = token_ids(llama, 1, 24)[0]
    plain = measure_speed(llama.model, prompt, new_tokens=3, repeats=1)
    assert plain.decode_weight_layers_ms is None and plain.decode_other_ms is None
    deployed = deploy_kernels(rtn4, head="int8").model
    # every linear of the dense model, and on the deployed one the kernel modules that replaced them
    assert sum(map(reads_weights, deployed.modules())) == sum(map(reads_weights, llama.model.modules())) > 0
    assert any(isinstance(m, Int4Linear) for m in deployed.modules() if reads_weights(m))
    for model in (llama.model, deployed):
        speed = measure_speed(model, prompt, new_tokens=3, repeats=1, weight_layer=reads_weights)
        assert speed.decode_weight_layers_ms > 0 and speed.decode_other_ms >= 0
        assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())  # hooks taken off
    with pytest.raises(InputError, match="no module"):
        measure_speed(llama.model, prompt, new_tokens=1, repeats=1, weight_layer=lambda m: False)


def test_the_estimate_here_adds_the_time_outside_the_weight_layers_to_their_bytes_at_bandwidth(llama):
    assert predicted_tokens_per_s_here(1.0, 1e6, 1.0) == pytest.approx(500.0)  # 1 ms of bytes + 1 ms of the rest
    cost = measure_cost(deploy_dense(llama.model), token_ids(llama, 1, 24)[0], QUICK)
    other_s = cost.speed.decode_other_ms / 1000
    assert cost.predicted_tokens_per_s_here(2.0) == pytest.approx(1 / (cost.weight_bytes_per_token / 2e9 + other_s))


def test_kv_bytes(llama):
    # 2 layers × (keys + values) × 2 kv heads × 16 dims × 10 tokens × 4 bytes
    assert kv_bytes_per_token(llama.model, 10, 4) == 2 * 2 * 2 * 16 * 10 * 4


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak memory is read from /proc on Linux")
def test_cost_in_a_child_process_measures_peak_memory(llama, rtn4):
    config = CostConfig(prompt_tokens=32, new_tokens=4, repeats=1, threads=1)
    cost = measure_cost(deploy_kernels(rtn4), prompt_ids(llama.model, token_ids(llama, 1, 64), config), config)
    assert cost.variant == "int4pack" and cost.speed.threads == 1 and cost.speed.prompt_tokens == 32
    assert cost.peak_rss_bytes >= cost.runtime_rss_bytes > 0
    assert "reset after the model was loaded" in cost.memory_method


def test_run_cost_of_a_quantized_run(llama, rtn4):
    report = run_cost(llama, rtn4, token_ids(llama, 2, 48), QUICK).to_dict()
    for key in ("decode_tokens_per_s", "dense_decode_tokens_per_s", "decode_speedup", "prefill_tokens_per_s",
                "weight_bytes_per_token", "real_perplexity", "real_perplexity_ratio", "top1_agreement",
                "max_abs_logit_diff", "kernel"):
        assert report[key] is not None, key
    assert report["kernel"] == "int4pack"
    assert report["weight_bytes_per_token"] < report["cost"]["dense"]["weight_bytes_per_token"]
    assert [d["device"] for d in report["cost"]["devices"]] == [d.name for d in DEVICES]
    assert "estimate" in report["cost"]["estimates"]["predicted_decode_tokens_per_s"]


def test_run_cost_of_a_pruned_run_says_the_mask_buys_nothing(llama):
    pruned = run_to_end(compress_lm(llama, lm_config("magnitude", nm=(2, 4))))
    report = run_cost(llama, pruned, token_ids(llama, 2, 48), QUICK).to_dict()
    assert report["kernel"] == "dense float32 (zeros kept)"
    assert report["weight_bytes_per_token"] == report["cost"]["dense"]["weight_bytes_per_token"]
    assert "no faster" in report["cost"]["notes"][-1]
    assert "real_perplexity" not in report


def test_device_estimates_are_bandwidth_over_bytes():
    device = DeviceClass("test", 100.0, 1.0, "made up")
    e = estimate(device, resident_bytes=2 ** 29, bytes_per_token=1e9)
    assert e.fits and e.tokens_per_s == pytest.approx(100.0)
    assert not estimate(device, 2 ** 31, 1e9).fits
    with pytest.raises(InputError):
        DeviceClass("bad", -1.0, 1.0, "")
    rows = [d.to_dict() for d in DEVICES] + [{"name": "", "bandwidth_gb_s": None}]
    assert devices_from_rows(rows) == DEVICES


def test_bandwidth_fields():
    bandwidth = measure_bandwidth(buffer_mib=8, repeats=2)
    assert bandwidth.gb_s_min <= bandwidth.gb_s <= bandwidth.gb_s_max and bandwidth.buffer_bytes == 8 << 20


CLI_FIELDS = {"top1_accuracy", "baseline_top1_accuracy", "kernel", "decode_tokens_per_s", "decode_tokens_per_s_min",
              "decode_tokens_per_s_max", "prefill_tokens_per_s", "dense_decode_tokens_per_s", "decode_speedup",
              "weight_bytes_per_token", "peak_memory_bytes", "bandwidth_gb_s", "predicted_decode_tokens_per_s",
              "real_perplexity", "top1_agreement", "max_abs_logit_diff", "cost", "predicted_decode_tokens_per_s_here",
              "decode_weight_layers_ms", "decode_other_ms"}


def test_cli_measure_speed_prints_the_cost_fields(tmp_path, capsys):
    import json

    from compression.cli import main
    from compression.lm import save_hf_folder
    from lm_helpers import TEXT

    save_hf_folder(tied_llama(), tmp_path / "model")
    (tmp_path / "text.txt").write_text(TEXT)
    args = ["lm", "--model", str(tmp_path / "model"), "--text", str(tmp_path / "text.txt"), "--eval-samples", "2",
            "--seq-len", "32", "--method", "rtn", "--bits", "4", "--group-size", "32", "--measure-speed",
            "--speed-prompt-tokens", "16", "--speed-new-tokens", "2", "--speed-repeats", "1", "--head", "int8",
            "--gguf-out", str(tmp_path / "m.gguf"), "--json", "--no-record"]
    assert main(args) == 0
    payload = json.loads(capsys.readouterr().out)
    assert CLI_FIELDS <= set(payload)
    assert payload["kernel"] == "int4pack + int8 head" and payload["threads"] == 1
    assert payload["gguf"]["stored_as"] == {"Q8_0": 14, "F16": 1, "F32": 5}
    assert {d["device"] for d in payload["cost"]["devices"]} == {d.name for d in DEVICES}
