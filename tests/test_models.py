import pytest
import torch

from compression.core.errors import InputError
from compression.models.architectures import ARCHITECTURES, MLP, SmallCNN, TinyTransformer, get_architecture


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_every_architecture_maps_images_to_ten_logits(name):
    arch = get_architecture(name)
    side = 28 if arch.dataset == "fashion-mnist" else 8
    assert arch.build()(torch.zeros(3, 1, side, side)).shape == (3, 10)


@pytest.mark.parametrize("small, name", [
    (MLP(64, (37,), 10), "mlp"),
    (MLP(784, (120, 33), 10), "lenet-300-100"),
    (SmallCNN(8, (5, 7), 11), "cnn"),
    (TinyTransformer(heads=2, ff=20), "transformer"),
])
def test_shrunk_weights_rebuild_their_own_shape(small, name):
    rebuilt = get_architecture(name).from_state_dict(small.state_dict())
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in small.state_dict().items()}


def test_weights_of_another_architecture_are_named_as_such():
    with pytest.raises(InputError, match="another architecture"):
        get_architecture("cnn").from_state_dict(MLP(64, (100,), 10).state_dict())


def test_unknown_architecture_lists_the_choices():
    with pytest.raises(InputError, match="mlp-wide"):
        get_architecture("resnet")
