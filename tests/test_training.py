import torch

from compression.data import load_dataset
from compression.models.architectures import MLP
from compression.training import TrainConfig, fit


def _train(seed: int, epochs: int = 3):
    torch.manual_seed(seed)
    model = MLP(64, (32,), 10)
    steps = list(fit(model, load_dataset("digits"), TrainConfig(epochs=epochs, seed=seed, lr=1e-2)))
    return model, steps


def test_fit_learns_and_reports_progress():
    model, steps = _train(0)
    assert [s.step for s in steps] == sorted(s.step for s in steps)
    assert steps[-1].fraction == 1.0 and steps[-1].total_steps == steps[-1].step
    epochs_done = [s for s in steps if s.test_accuracy is not None]
    assert len(epochs_done) == 3
    assert epochs_done[-1].test_accuracy > 0.85  # far above the 10% of chance
    assert steps[-1].loss < steps[0].loss
    assert not model.training


def test_same_seed_gives_identical_weights():
    a, _ = _train(1, epochs=1)
    b, _ = _train(1, epochs=1)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_stopping_the_generator_cancels_training():
    torch.manual_seed(0)
    model = MLP(64, (32,), 10)
    run = fit(model, load_dataset("digits"), TrainConfig(epochs=50))
    first = next(run)
    run.close()
    assert first.step < first.total_steps and not model.training


def test_after_step_runs_after_every_optimizer_step():
    torch.manual_seed(0)
    model = MLP(64, (16,), 10)
    mask = torch.rand_like(model.fc1.weight) > 0.5

    def keep_masked(m):
        with torch.no_grad():
            m.fc1.weight.mul_(mask)

    for _ in fit(model, load_dataset("digits"), TrainConfig(epochs=1), after_step=keep_masked):
        pass
    assert torch.all(model.fc1.weight[~mask] == 0)
