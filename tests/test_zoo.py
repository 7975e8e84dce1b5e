import pytest
import torch
from conftest import state_checksum

from compression.models.facts import describe
from compression.models.loading import load_zoo
from compression.models.zoo import ZOO, training_record

# Measured on the fixed seed; a regression in data, models or training shows here first.
MIN_ACCURACY = {"mlp": 0.95, "mlp-wide": 0.96, "cnn": 0.96, "transformer": 0.96, "lenet-300-100": 0.87}


@pytest.mark.parametrize("name", ZOO)
def test_every_zoo_model_trains_to_its_accuracy(name, zoo, request):
    if name == "lenet-300-100":
        request.getfixturevalue("fashion_available")
    model = zoo(name)
    facts = describe(model)
    assert facts.accuracy >= MIN_ACCURACY[name]
    assert facts.accuracy == pytest.approx(training_record(name)["accuracy"])  # cache holds what was trained
    assert facts.size_bytes > 4 * facts.params  # fp32 weights plus the file's own structure


def test_zoo_cache_reloads_identical_weights(zoo):
    first = zoo("mlp")
    again = load_zoo("mlp")
    assert first.module is not again.module
    assert all(torch.equal(a, b) for a, b in zip(first.module.state_dict().values(),
                                                 again.module.state_dict().values()))


def test_measuring_a_model_never_mutates_it(zoo):
    model = zoo("cnn")
    before = state_checksum(model.module)
    describe(model)
    model.evaluate()
    from compression.models.workbench import Workbench, with_weights

    bench = Workbench(model)
    bench.evaluate({"fc1.weight": torch.zeros_like(model.weights()["fc1.weight"])})
    with_weights(model, {"fc1.weight": torch.zeros_like(model.weights()["fc1.weight"])})
    assert state_checksum(model.module) == before


def test_workbench_swaps_weights_in_and_back_out(zoo):
    from compression.models.workbench import Workbench

    model = zoo("mlp")
    bench = Workbench(model)
    base = bench.evaluate()
    zeroed = bench.evaluate({"fc1.weight": torch.zeros_like(model.weights()["fc1.weight"])})
    assert zeroed.accuracy < 0.5 < base.accuracy
    assert bench.evaluate().accuracy == base.accuracy  # the earlier swap was undone


def test_a_model_another_process_is_training_is_waited_for_out_loud(zoo, tmp_path, monkeypatch):
    """First use while another process holds the model's lock: progress says it waits (it sat at 0% in silence),
    then the model that process cached is used, not trained again."""
    import shutil

    from filelock import FileLock

    from compression.core import Waiting
    from compression.models.zoo import train_zoo_model, zoo_path

    trained = zoo_path("mlp")
    zoo("mlp")
    monkeypatch.setenv("COMPRESSION_LAB_CACHE", str(tmp_path))
    other = FileLock(zoo_path("mlp").with_suffix(".lock"))
    other.acquire()  # the other process, training mlp
    steps = train_zoo_model("mlp")
    waits = [next(steps), next(steps)]
    assert all(isinstance(w, Waiting) and w.what == "another process training mlp" for w in waits)
    assert 0 < waits[0].seconds < waits[1].seconds and waits[0].fraction == 0.0
    shutil.copy(trained, zoo_path("mlp"))  # it finishes, cached
    other.release()
    assert list(steps) == []  # found in the cache: nothing trained here
