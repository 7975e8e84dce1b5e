"""Pruning with training: the cubic schedule, masked fine-tuning keeps zeros, gradual pruning reaches its target."""

import pytest
import torch
from conftest import drain, state_checksum

from compression.core.errors import InputError
from compression.models.loading import LoadedModel, prunable_weights
from compression.pruning import PruneConfig, prune
from compression.pruning.retrain import FinetuneConfig, GradualConfig, cubic_sparsity, finetune, prune_gradually
from compression.training import TrainConfig


def test_cubic_schedule_matches_zhu_gupta():
    s_i, s_f, t0, n, dt = 0.1, 0.9, 5, 10, 4
    assert cubic_sparsity(0, s_i, s_f, t0, n, dt) == s_i
    assert cubic_sparsity(t0, s_i, s_f, t0, n, dt) == s_i
    assert cubic_sparsity(t0 + n * dt, s_i, s_f, t0, n, dt) == s_f
    assert cubic_sparsity(10_000, s_i, s_f, t0, n, dt) == s_f
    t = t0 + 3 * dt
    assert cubic_sparsity(t, s_i, s_f, t0, n, dt) == pytest.approx(s_f + (s_i - s_f) * (1 - 3 / 10) ** 3)
    values = [cubic_sparsity(t, s_i, s_f, t0, n, dt) for t in range(t0, t0 + n * dt + 1)]
    assert values == sorted(values)  # never decreasing
    gaps = [b - a for a, b in zip(values, values[1:])]
    assert gaps[0] > gaps[-1]  # fast at first, slow at the end


def test_finetune_keeps_pruned_weights_at_zero_and_never_mutates(zoo):
    model = zoo("mlp")
    before = state_checksum(model.module)
    config = FinetuneConfig(PruneConfig(amount=0.9), TrainConfig(epochs=3, lr=1e-3))
    steps, result = drain(finetune(model, config))
    assert state_checksum(model.module) == before
    assert steps and steps[-1].test_accuracy is not None
    masks = prune(model, config.prune).masks
    for name, w in prunable_weights(result.model.module).items():
        assert torch.all(w[masks[name] == 0] == 0)
    assert result.sparsity == pytest.approx(0.9, abs=1e-3)
    assert result.accuracy > result.oneshot_accuracy  # 3 epochs already win back accuracy at 90%
    assert result.to_dict()["config"]["kind"] == "one-shot + fine-tune"


def test_gradual_reaches_target_and_reports_sparsity(zoo):
    model = zoo("mlp")
    config = GradualConfig(PruneConfig(amount=0.8), TrainConfig(epochs=3, lr=1e-3), interval_steps=5)
    steps, result = drain(prune_gradually(model, config))
    scheduled = [s.parts["sparsity"] for s in steps]
    assert scheduled == sorted(scheduled) and scheduled[-1] == pytest.approx(0.8)
    assert result.sparsity == pytest.approx(0.8, abs=1e-3)
    assert 0.0 < result.accuracy <= 1.0


def test_structured_finetune_trains_the_smaller_model(zoo):
    model = zoo("mlp")
    before = state_checksum(model.module)
    _, result = drain(finetune(model, FinetuneConfig(PruneConfig(method="structured", amount=0.5),
                                                    TrainConfig(epochs=1))))
    assert result.model.module.fc1.out_features == 50
    assert state_checksum(model.module) == before  # the rebuilt model shares no storage with the original


def test_training_needs_a_pytorch_model_with_training_data(zoo):
    data = zoo("mlp").dataset
    from compression.data import Dataset

    eval_only = Dataset("eval", data.x_test, data.y_test, data.classes)
    model = LoadedModel("m", "upload", eval_only, module=zoo("mlp").module)
    with pytest.raises(InputError, match="training data"):
        next(finetune(model, FinetuneConfig(PruneConfig(amount=0.5))))
    with pytest.raises(InputError, match="gradual pruning needs magnitude"):
        GradualConfig(PruneConfig(nm=(2, 4)))
