"""Pruning engine: masks equal torch.nn.utils.prune, structured pruning really shrinks, bad input is refused."""

import copy
import math
import sys

import pytest
import torch
import torch.nn.utils.prune as tp
from conftest import onnx_upload, state_checksum
from torch import nn

from compression.core.errors import InputError
from compression.metrics import state_dict_of, torch_save_bytes
from compression.models.loading import LoadedModel
from compression.models.workbench import Workbench
from compression.pruning import (
    PruneConfig,
    compute_masks,
    global_magnitude_masks,
    magnitude_mask,
    nm_mask,
    prune,
    threshold_mask,
)
from compression.pruning.structured import keep_units, plan, unit_groups, unit_masks, unit_scores


def _layers(module):
    return [(name, m) for name, m in module.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


@pytest.mark.parametrize("amount", [0.0, 0.3, 0.5, 0.9, 1.0])
def test_magnitude_mask_equals_l1_unstructured(amount):
    torch.manual_seed(0)
    layer = nn.Linear(37, 23)
    expected = tp.l1_unstructured(copy.deepcopy(layer), "weight", amount=amount).weight_mask
    assert torch.equal(magnitude_mask(layer.weight.detach(), amount), expected)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
@pytest.mark.parametrize("amount", [0.2, 0.9, 0.95])
def test_global_masks_equal_global_unstructured(zoo, name, amount):
    model = zoo(name)
    reference = copy.deepcopy(model.module)
    tp.global_unstructured([(m, "weight") for _, m in _layers(reference)], pruning_method=tp.L1Unstructured,
                           amount=amount)
    masks = compute_masks(model.weights(), PruneConfig(amount=amount, scope="global"))
    for name_, m in _layers(reference):
        assert torch.equal(masks[f"{name_}.weight"], m.weight_mask)


def test_layer_scope_equals_l1_unstructured_per_layer(zoo):
    model = zoo("cnn")
    masks = compute_masks(model.weights(), PruneConfig(amount=0.7, scope="layer"))
    for name, m in _layers(copy.deepcopy(model.module)):
        assert torch.equal(masks[f"{name}.weight"], tp.l1_unstructured(m, "weight", amount=0.7).weight_mask)


@pytest.mark.parametrize("amount", [0.25, 0.5, 0.75])
@pytest.mark.parametrize("norm", [1, 2])
def test_structured_units_equal_ln_structured(zoo, amount, norm):
    model = zoo("cnn")
    keep = plan(model.module, PruneConfig(method="structured", amount=amount, norm=norm))
    for layer in ("conv1", "conv2", "fc1"):
        ref = tp.ln_structured(copy.deepcopy(model.module.get_submodule(layer)), "weight", amount=amount, n=norm,
                               dim=0).weight_mask
        kept_rows = ref.reshape(ref.shape[0], -1).any(dim=1).nonzero().flatten()
        assert torch.equal(keep[layer], kept_rows)


def test_threshold_keeps_strictly_greater():
    w = torch.tensor([-0.3, -0.1, 0.0, 0.1, 0.2, 0.5])
    assert threshold_mask(w, 0.1).tolist() == [1, 0, 0, 0, 1, 1]


def test_nm_mask_keeps_n_of_every_m_along_inputs():
    torch.manual_seed(0)
    w = torch.randn(8, 10)  # 10 inputs: the last group of 2 is padded and still keeps its 2 largest
    mask = nm_mask(w, 2, 4)
    groups = mask[:, :8].reshape(8, 2, 4)
    assert torch.all(groups.sum(-1) == 2)
    assert torch.all(mask[:, 8:].sum(-1) == 2)
    kept_min = (w[:, :4].abs() * mask[:, :4]).max(-1).values
    assert torch.all(w[:, :4].abs().topk(2, -1).values[:, 1] <= kept_min)


def test_nm_mask_for_conv_and_transposed_weights():
    torch.manual_seed(0)
    conv = torch.randn(4, 3, 3, 3)  # 27 inputs per filter: 6 groups of 4 keep 2 each, the tail of 3 keeps 2
    rows = nm_mask(conv, 2, 4).reshape(4, 27)
    assert torch.equal(rows[:, :24].reshape(4, 6, 4).sum(-1), torch.full((4, 6), 2.0))
    assert torch.equal(rows[:, 24:].sum(-1), torch.full((4,), 2.0))
    w = torch.randn(6, 8)
    assert torch.equal(nm_mask(w.t().contiguous(), 2, 4, out_axis=1), nm_mask(w, 2, 4).t())


def test_prune_returns_new_model_and_never_mutates(zoo):
    model = zoo("mlp")
    before = state_checksum(model.module)
    result = prune(model, PruneConfig(amount=0.9))
    assert state_checksum(model.module) == before
    assert result.model.module is not model.module
    assert result.sparsity == pytest.approx(0.9, abs=1e-3)
    assert result.nonzero_params < result.params == result.baseline_params
    assert result.sparse_size_bytes < result.size_bytes == result.baseline_size_bytes
    assert result.to_dict()["config"]["amount"] == 0.9


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_structured_shrinks_params_file_and_keeps_outputs_of_masked_model(zoo, name):
    model = zoo(name)
    result = prune(model, PruneConfig(method="structured", amount=0.5))
    assert result.params < result.baseline_params * 0.6
    assert result.size_bytes < result.baseline_size_bytes * 0.6
    assert len(torch_save_bytes(state_dict_of(result.model.module))) == result.size_bytes
    # zeroing a unit's rows and the next layer's columns is exactly removing it
    masked = Workbench(model).evaluate({k: w * result.masks[k] for k, w in model.weights().items()})
    assert masked.accuracy == pytest.approx(result.accuracy)


def test_structured_heads_removal_matches_masking(zoo):
    from compression.models.architectures import TinyTransformer

    torch.manual_seed(0)
    module = TinyTransformer().eval()
    model = LoadedModel("t", "zoo", zoo("mlp").dataset, module=module, arch="transformer")
    result = prune(model, PruneConfig(method="structured", amount=0.5))
    assert result.model.module.attn.heads == 2 and result.model.module.ff_units == 32
    keep = plan(module, PruneConfig(method="structured", amount=0.5))
    masks = unit_masks(module, keep)
    x = model.dataset.x_test[:16]
    masked = copy.deepcopy(module)
    with torch.no_grad():
        for k, p in masked.named_parameters():
            if k in masks:
                p.mul_(masks[k])
        assert torch.allclose(masked(x), result.model.module(x), atol=1e-5)


def test_unit_scores_and_keep_at_least_one():
    torch.manual_seed(0)
    from compression.models.architectures import MLP

    module = MLP(4, (6,), 3)
    group = unit_groups(module)[0]
    scores = unit_scores(dict(module.state_dict()), group, 1)
    assert torch.allclose(scores, module.fc1.weight.abs().sum(1))
    assert keep_units(scores, 1.0).numel() == 1


# ---- bad input: clear InputError or a sensible number, never NaN ----

@pytest.mark.parametrize("kwargs", [dict(amount=1.5), dict(amount=-0.1), dict(amount=float("nan")),
                                    dict(threshold=-1.0), dict(), dict(amount=0.5, threshold=0.1),
                                    dict(nm=(2, 4), amount=0.3), dict(nm=(5, 4)), dict(nm=(0, 4)),
                                    dict(method="structured", nm=(2, 4), amount=0.5),
                                    dict(method="wanda", threshold=0.1),
                                    dict(method="structured", threshold=0.1), dict(method="bogus", amount=0.1),
                                    dict(scope="everywhere", amount=0.1)])
def test_bad_configs_are_refused(kwargs):
    with pytest.raises(InputError):
        PruneConfig(**kwargs)


@pytest.mark.parametrize("config", [PruneConfig(amount=0.0), PruneConfig(amount=1.0),
                                    PruneConfig(threshold=1e6), PruneConfig(method="structured", amount=1.0)])
def test_extremes_give_finite_results(zoo, config):
    result = prune(zoo("mlp"), config)
    assert math.isfinite(result.accuracy) and 0.0 <= result.accuracy <= 1.0
    assert math.isfinite(result.threshold)
    if config.amount == 0.0:
        assert result.accuracy == result.baseline_accuracy and result.sparsity == 0.0
    if config.threshold == 1e6 or (config.amount == 1.0 and config.method == "magnitude"):
        assert result.sparsity == 1.0 and result.nonzero_params < 200


def test_excluding_every_layer_or_unknown_layer_is_an_input_error(zoo):
    model = zoo("mlp")
    with pytest.raises(InputError, match="every layer is excluded"):
        prune(model, PruneConfig(amount=0.5, exclude=("fc1", "fc2")))
    with pytest.raises(InputError, match="not a prunable layer"):
        prune(model, PruneConfig(amount=0.5, exclude=("fc9",)))
    kept = prune(model, PruneConfig(amount=0.9, exclude=("fc2.weight",)))
    assert set(kept.masks) == {"fc1.weight"}


def test_model_without_prunable_layers_is_an_input_error(zoo):
    module = nn.Sequential(nn.Flatten(), nn.ReLU())
    model = LoadedModel("empty", "custom", zoo("mlp").dataset, module=module)
    with pytest.raises(InputError, match="no Linear or Conv"):
        prune(model, PruneConfig(amount=0.5))
    with pytest.raises(InputError, match="structured pruning knows"):
        prune(model, PruneConfig(method="structured", amount=0.5))
    with pytest.raises(InputError):
        global_magnitude_masks({}, 0.5)


def test_engine_does_not_import_streamlit():
    import subprocess

    code = ("import sys, compression.pruning.apply, compression.pruning.structured, compression.pruning.sensitivity, "
            "compression.pruning.retrain, compression.pruning.live, compression.plots.pruning; "
            "assert 'streamlit' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def _onnx_mlp(model):
    from compression.models.loading import load_onnx_with_data

    onnx_file, npz_file = onnx_upload(model)
    return load_onnx_with_data(onnx_file, "mlp.onnx", npz_file, "eval.npz")


def test_onnx_magnitude_and_nm_match_pytorch_and_structured_is_refused(zoo):
    model = zoo("mlp")
    onnx_model = _onnx_mlp(model)
    for config in (PruneConfig(amount=0.8), PruneConfig(nm=(2, 4))):
        onnx_result, torch_result = prune(onnx_model, config), prune(model, config)
        assert onnx_result.model.onnx is not None and onnx_result.model.onnx.raw != onnx_model.onnx.raw
        assert onnx_result.accuracy == pytest.approx(torch_result.accuracy)
        assert onnx_result.sparsity == pytest.approx(torch_result.sparsity)
    with pytest.raises(InputError, match="needs a PyTorch model"):
        prune(onnx_model, PruneConfig(method="structured", amount=0.5))
    with pytest.raises(InputError, match="needs a PyTorch model"):
        prune(onnx_model, PruneConfig(method="sparsegpt", amount=0.5))
