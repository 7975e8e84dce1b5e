import dataclasses
import time

import pytest
import torch
import torch.nn.functional as F
from conftest import drain, state_checksum

from compression.core.errors import InputError
from compression.core.jobs import Job
from compression.data import Dataset
from compression.distillation import DistillConfig, build_student, distill, hint_layers, parse_hidden, soft_targets
from compression.distillation.loss import distillation_loss, labeled_mask, soft_loss, top1_agreement
from compression.distillation.student import check_pair
from compression.distillation.teacher import teacher_logits
from compression.models.architectures import MLP
from compression.models.loading import LoadedModel


def _run(teacher, config):
    """Consume distill() and return (steps, result)."""
    return drain(distill(teacher, config))


def _logits(seed=0, n=16, c=10):
    g = torch.Generator().manual_seed(seed)
    student, teacher = torch.randn(n, c, generator=g) * 3, torch.randn(n, c, generator=g) * 3
    return student, teacher, torch.randint(0, c, (n,), generator=g)


@pytest.mark.parametrize("alpha,temperature", [(0.0, 1.0), (0.5, 4.0), (0.9, 2.5), (1.0, 10.0)])
def test_loss_matches_pytorch_reference(alpha, temperature):
    s, t, y = _logits()
    s, t = s.double(), t.double()  # float64: in float32 two formulas differ in the last bits, more on some CPUs
    kd = distillation_loss(s, t, y, alpha, temperature)
    reference_soft = F.kl_div(F.log_softmax(s / temperature, 1), F.softmax(t / temperature, 1),
                              reduction="batchmean") * temperature ** 2
    reference = alpha * F.cross_entropy(s, y) + (1 - alpha) * reference_soft
    torch.testing.assert_close(kd.total, reference)
    torch.testing.assert_close(kd.hard, alpha * F.cross_entropy(s, y))
    torch.testing.assert_close(kd.soft, (1 - alpha) * reference_soft)


def test_t_squared_keeps_soft_gradient_scale_independent_of_temperature():
    s, t, _ = _logits(1)
    s, t = s - s.mean(1, keepdim=True), t - t.mean(1, keepdim=True)  # Hinton's high-T argument assumes zero-mean logits
    norms = []
    for temperature in (10.0, 20.0, 40.0):
        student = s.clone().requires_grad_()
        soft_loss(student, t, temperature).backward()
        norms.append(student.grad.norm().item())
        # The identity in float64: at T = 40 the KL is a small difference of large terms, and float32 kernels
        # (AVX2, AVX-512, ARM) sum it in different orders, up to ~2e-5 apart.
        s64, t64 = s.double(), t.double()
        unscaled = F.kl_div(F.log_softmax(s64 / temperature, 1), F.softmax(t64 / temperature, 1),
                            reduction="batchmean")
        torch.testing.assert_close(soft_loss(s64, t64, temperature), unscaled * temperature ** 2)
    assert max(norms) / min(norms) < 1.1  # without T^2 they would shrink 16x from T=10 to T=40


def test_soft_gradient_is_zero_when_student_matches_teacher():
    _, t, _ = _logits(2)
    student = t.clone().requires_grad_()
    loss = soft_loss(student, t, 4.0)
    loss.backward()
    assert abs(loss.item()) < 1e-5
    assert student.grad.abs().max().item() < 1e-6


def test_seed_design_formula_has_no_minimum_at_the_teacher():
    """The design notes' CrossEntropyLoss()(t/T, s/T) still pushes when s == t: it is linear in s."""
    _, t, _ = _logits(3)
    student = t.clone().requires_grad_()
    torch.nn.CrossEntropyLoss()(t / 4, student / 4).backward()
    assert student.grad.abs().max().item() > 1e-2


def test_hard_term_uses_only_labeled_samples():
    s, t, y = _logits(4)
    mask = torch.zeros(len(y), dtype=torch.bool)
    mask[:3] = True
    kd = distillation_loss(s, t, y, 1.0, 2.0, mask)
    torch.testing.assert_close(kd.hard, F.cross_entropy(s[:3], y[:3]))
    none = distillation_loss(s.requires_grad_(), t, y, 1.0, 2.0, torch.zeros(len(y), dtype=torch.bool))
    none.total.backward()  # a batch with no labels still backpropagates (zero gradient)
    assert none.hard.item() == 0.0 and s.grad.abs().max().item() == 0.0


def test_labeled_fraction_selects_the_right_count_fixed_by_seed():
    assert int(labeled_mask(1437, 0.05, 0).sum()) == 72
    assert int(labeled_mask(1437, 1.0, 0).sum()) == 1437
    assert int(labeled_mask(10, 0.001, 0).sum()) == 1  # never zero labels
    assert torch.equal(labeled_mask(1437, 0.2, 3), labeled_mask(1437, 0.2, 3))
    assert not torch.equal(labeled_mask(1437, 0.2, 3), labeled_mask(1437, 0.2, 4))


def test_top1_agreement():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[2.0, 0.0], [3.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert top1_agreement(a, b) == 0.5


def test_paired_baseline_has_same_init_batches_and_steps(zoo):
    """With alpha = 1 and all labels the two objectives are the same, so paired runs end bit-identical."""
    teacher = zoo("cnn")
    steps, result = _run(teacher, DistillConfig(alpha=1.0, temperature=3.0, epochs=2, seed=5))
    assert all(s.student.step == s.scratch.step for s in steps)
    assert steps[-1].student.step == steps[-1].student.total_steps == result.steps
    for a, b in zip(result.student.state_dict().values(), result.scratch.state_dict().values()):
        assert torch.equal(a, b)


def test_scratch_sees_only_the_labeled_subset(zoo):
    """Scrambling the labels of unlabeled images changes nothing for the scratch twin (and the student)."""
    teacher = zoo("cnn")
    config = DistillConfig(alpha=0.5, temperature=4.0, labeled_fraction=0.05, epochs=1, seed=1)
    _, base = _run(teacher, config)
    data = teacher.dataset
    keep = labeled_mask(len(data.y_train), 0.05, 1)
    scrambled = torch.where(keep, data.y_train, (data.y_train + 3) % 10)
    other = LoadedModel("cnn", "zoo", Dataset(data.name, data.x_test, data.y_test, data.classes, data.x_train,
                                              scrambled), module=teacher.module, arch="cnn")
    _, changed = _run(other, config)
    assert base.labeled_images == 72 and base.train_images == len(data.y_train)
    for model in ("scratch", "student"):
        for a, b in zip(getattr(base, model).state_dict().values(), getattr(changed, model).state_dict().values()):
            assert torch.equal(a, b)


def test_distillation_beats_scratch_with_few_labels_and_leaves_teacher_alone(zoo):
    teacher = zoo("cnn")
    before = state_checksum(teacher.module)
    _, result = _run(teacher, DistillConfig(alpha=0.5, temperature=4.0, labeled_fraction=0.05, epochs=8,
                                            seed=0, hint_layer="fc1"))
    assert state_checksum(teacher.module) == before and not teacher.module.training
    assert result.student_accuracy > result.scratch_accuracy + 0.05
    assert result.agreement > result.scratch_agreement
    assert result.student_params == 64 * 32 + 32 + 32 * 10 + 10 < result.teacher_params
    assert result.student_size_bytes < result.teacher_size_bytes
    assert result.student_latency_ms > 0 and result.teacher_latency_ms > 0
    payload = result.to_dict()
    assert {"student_accuracy", "scratch_accuracy", "teacher_accuracy", "student_params", "teacher_params",
            "agreement", "gain"} <= set(payload)
    assert payload["gain"] == pytest.approx(result.student_accuracy - result.scratch_accuracy)


def test_cancel_mid_run_leaves_no_stuck_state(zoo):
    teacher = zoo("cnn")
    before = state_checksum(teacher.module)
    job = Job(lambda: distill(teacher, DistillConfig(epochs=200)), label="distill")
    deadline = time.time() + 30
    while not job.steps and time.time() < deadline:
        time.sleep(0.02)
    job.cancel()
    job.join(timeout=30)
    assert job.status == "cancelled" and not job.running and job.result is None
    assert 0 < job.steps[-1].student.step < job.steps[-1].student.total_steps
    assert state_checksum(teacher.module) == before
    again = Job(lambda: distill(teacher, DistillConfig(epochs=1)), label="distill")  # a new run starts cleanly
    again.join(timeout=60)
    assert again.status == "done" and again.result.steps == again.steps[-1].student.step


@pytest.mark.parametrize("kwargs,message", [
    ({"alpha": -0.1}, "alpha"), ({"alpha": 1.5}, "alpha"), ({"temperature": 0.0}, "temperature"),
    ({"temperature": -2.0}, "temperature"), ({"temperature": 1000.0}, "temperature"),
    ({"labeled_fraction": 0.0}, "labeled fraction"), ({"labeled_fraction": 1.2}, "labeled fraction"),
    ({"student_hidden": ()}, "hidden"), ({"student_hidden": (0,)}, "hidden"), ({"epochs": 0}, "epochs"),
    ({"seed": -1}, "seed"), ({"hint_weight": -1.0}, "hint"),
])
def test_bad_config_is_refused(kwargs, message):
    with pytest.raises(InputError, match=message):
        DistillConfig(**kwargs)


def test_config_round_trips_to_dict():
    config = DistillConfig(student_hidden=[64, 32], hint_layer="fc1")
    assert config.student_hidden == (64, 32)
    assert DistillConfig(**config.to_dict()) == config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.alpha = 0.2


def test_student_bigger_than_teacher_is_refused(zoo):
    with pytest.raises(InputError, match="bigger than the teacher"):
        _run(zoo("cnn"), DistillConfig(student_hidden=(1024,)))


def test_teacher_and_student_must_agree_on_inputs_and_classes(zoo):
    teacher = zoo("cnn")
    logits = teacher_logits(teacher, teacher.dataset.x_train[:8])
    with pytest.raises(InputError, match="outputs but the teacher has 10"):
        check_pair(teacher, MLP(64, (8,), 5), logits)
    with pytest.raises(InputError, match="the student cannot read"):
        check_pair(teacher, MLP(32, (8,), 10), logits)
    check_pair(teacher, build_student(DistillConfig(), teacher.dataset), logits)


def test_bad_hint_layer_and_hidden_text_are_refused(zoo):
    teacher = zoo("cnn")
    assert hint_layers(teacher) == ["conv1", "conv2", "fc1"]
    with pytest.raises(InputError, match="hint layer 'fc2'"):
        _run(teacher, DistillConfig(hint_layer="fc2", epochs=1))
    assert parse_hidden("64,32") == (64, 32)
    with pytest.raises(InputError):
        parse_hidden("wide")


def test_soft_targets_flatten_with_temperature(zoo):
    view = soft_targets(zoo("cnn"), 0, 4.0)
    assert sum(view.probs_t1) == pytest.approx(1.0, abs=1e-5) and sum(view.probs_t) == pytest.approx(1.0, abs=1e-5)
    assert max(view.probs_t) < max(view.probs_t1)  # a higher T reveals the small probabilities ("dark knowledge")
    assert len(view.image) == 8 and view.label == int(zoo("cnn").dataset.y_test[0])
    with pytest.raises(InputError, match="image index"):
        soft_targets(zoo("cnn"), 10_000, 4.0)


def test_seed_fixes_the_student_whatever_other_threads_do_with_the_global_rng(zoo):
    data = zoo("cnn").dataset
    first = build_student(DistillConfig(seed=3), data)
    torch.manual_seed(123)
    torch.rand(10)  # another session drawing from torch's global generator in between
    second = build_student(DistillConfig(seed=3), data)
    other = build_student(DistillConfig(seed=4), data)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert not torch.equal(first.fc1.weight, other.fc1.weight)


def test_cli_prints_the_paired_result_and_records_it(zoo, capsys):
    import json

    from compression.cli import main
    from compression.history.store import RunStore

    zoo("cnn")
    code = main(["distill", "--teacher", "cnn", "--student-hidden", "16", "--alpha", "0.5", "--temperature", "2",
                 "--labeled-fraction", "0.1", "--epochs", "1", "--seed", "2", "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {"student_accuracy", "scratch_accuracy", "teacher_accuracy", "student_params", "teacher_params",
            "agreement", "gain"} <= set(payload)
    assert payload["student_params"] == 64 * 16 + 16 + 16 * 10 + 10 and payload["labeled_images"] == 144
    saved = {r.id: r for r in RunStore().runs(kind="distill")}[payload["run_id"]]
    assert saved.metrics["accuracy"] == payload["student_accuracy"] and saved.file_name == "student.safetensors"
    assert len(saved.details["curves"]["scratch"]) == len(saved.details["curves"]["student"]) > 0


def test_cli_refuses_bad_input_with_exit_2(capsys):
    from compression.cli import main

    assert main(["distill", "--teacher", "cnn", "--student-hidden", "32", "--alpha", "1.5", "--temperature", "4"]) == 2
    assert "alpha must be in [0, 1]" in capsys.readouterr().err
