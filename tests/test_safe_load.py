import io
import os
import zipfile

import pytest
import torch
from safetensors.torch import save as st_save

from compression.core.errors import InputError
from compression.models.architectures import MLP
from compression.models.loading import load_weights
from compression.models.safe_load import read_state_dict


def _pt(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


class _Evil:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_safetensors_and_weights_only_state_dicts_load():
    state = MLP(64, (100,), 10).state_dict()
    for data, name in ((st_save(state), "w.safetensors"), (_pt(state), "w.pt"),
                       (_pt({"state_dict": state, "epoch": 3}), "ckpt.pth")):
        loaded = read_state_dict(data, name)
        assert set(loaded) == set(state) and all(torch.equal(loaded[k], state[k]) for k in state)


def test_malicious_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(InputError, match="nothing was executed"):
        read_state_dict(_pt({"fc1.weight": _Evil(marker)}), "evil.pt")
    assert not marker.exists()


def test_torchscript_and_pt2_are_refused_with_a_reason():
    scripted = torch.jit.script(MLP(64, (8,), 10))
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    with pytest.raises(InputError, match="TorchScript"):
        read_state_dict(buffer.getvalue(), "model.pt")
    with pytest.raises(InputError, match="torch.export"):
        read_state_dict(b"PK whatever", "model.pt2")


@pytest.mark.parametrize("name", ["w.safetensors", "w.pt"])
def test_truncated_files_are_refused(name):
    state = MLP(64, (100,), 10).state_dict()
    data = st_save(state) if name.endswith("safetensors") else _pt(state)
    with pytest.raises(InputError, match="corrupt or truncated"):
        read_state_dict(data[: len(data) // 2], name)


def test_random_bytes_and_empty_files_are_refused():
    with pytest.raises(InputError):
        read_state_dict(os.urandom(1000), "w.safetensors")
    with pytest.raises(InputError, match="empty"):
        read_state_dict(b"", "w.pt")
    with pytest.raises(InputError, match="unsupported file type"):
        read_state_dict(b"abc", "w.txt")


def test_nan_weights_are_refused():
    state = MLP(64, (4,), 10).state_dict()
    state["fc1.weight"][0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN or Inf"):
        read_state_dict(st_save(state), "w.safetensors")


def test_weights_for_the_wrong_architecture_are_explained():
    with pytest.raises(InputError, match="another architecture"):
        load_weights("cnn", st_save(MLP(64, (100,), 10).state_dict()), "mlp.safetensors")
    with pytest.raises(InputError, match="shape"):
        load_weights("mlp", st_save(MLP(64, (100,), 12).state_dict()), "twelve.safetensors")


def test_shrunk_weights_for_a_zoo_architecture_load_and_evaluate():
    model = load_weights("mlp", st_save(MLP(64, (40,), 10).state_dict()), "small.safetensors")
    assert model.module.fc1.out_features == 40 and 0 <= model.evaluate().accuracy <= 1


def test_a_zip_that_is_not_a_state_dict_is_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(InputError):
        read_state_dict(buffer.getvalue(), "w.pt")
