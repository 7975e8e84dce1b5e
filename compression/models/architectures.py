"""The zoo's architectures; each can be rebuilt from a state dict so pruned (shrunk) weights load too."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from compression.core.errors import InputError

# The layer types whose weights every technique acts on (Conv3d included: a user's own architecture may have it).
WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


class MLP(nn.Sequential):
    """Flatten, then Linear layers `fc1..fcK` with ReLU between them."""

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int):
        layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        dims = [in_features, *hidden, num_classes]
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:]), start=1):
            layers[f"fc{i}"] = nn.Linear(d_in, d_out)
            if i < len(dims) - 1:
                layers[f"relu{i}"] = nn.ReLU()
        super().__init__(layers)
        self.hidden = tuple(hidden)


class SmallCNN(nn.Module):
    """Two 3x3 conv layers, a 2x2 max-pool, then two Linear layers."""

    def __init__(self, image_size: int = 8, channels: Sequence[int] = (16, 32), hidden: int = 64,
                 num_classes: int = 10):
        super().__init__()
        c1, c2 = channels
        self.channels, self.hidden_units, self.image_size = (c1, c2), hidden, image_size
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.fc1 = nn.Linear(c2 * (image_size // 2) ** 2, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: Tensor) -> Tensor:  # x: (B, 1, H, W)
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (B, c2, H/2, W/2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class Attention(nn.Module):
    """Multi-head self-attention with separate q/k/v projections, so heads can be pruned one by one."""

    def __init__(self, d_model: int, heads: int, head_dim: int):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        inner = heads * head_dim
        self.q_proj = nn.Linear(d_model, inner)
        self.k_proj = nn.Linear(d_model, inner)
        self.v_proj = nn.Linear(d_model, inner)
        self.out_proj = nn.Linear(inner, d_model)

    def forward(self, x: Tensor) -> Tensor:  # x: (B, T, d_model)
        b, t, _ = x.shape
        split = lambda z: z.view(b, t, self.heads, self.head_dim).transpose(1, 2)  # noqa: E731 (B, h, T, hd)
        y = F.scaled_dot_product_attention(split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x)))
        return self.out_proj(y.transpose(1, 2).reshape(b, t, self.heads * self.head_dim))


class TinyTransformer(nn.Module):
    """One pre-norm transformer block over the rows of an image: each row is a token."""

    def __init__(self, rows: int = 8, row_width: int = 8, d_model: int = 32, heads: int = 4, head_dim: int = 8,
                 ff: int = 64, num_classes: int = 10):
        super().__init__()
        self.rows, self.ff_units = rows, ff
        self.embed = nn.Linear(row_width, d_model)
        self.pos = nn.Parameter(torch.zeros(rows, d_model))
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = Attention(d_model, heads, head_dim)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff1 = nn.Linear(d_model, ff)
        self.ff2 = nn.Linear(ff, d_model)
        self.norm_out = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, x: Tensor) -> Tensor:  # x: (B, 1, rows, row_width)
        h = self.embed(x.flatten(1, 2)) + self.pos  # (B, T, d)
        h = h + self.attn(self.norm1(h))
        h = h + self.ff2(F.relu(self.ff1(self.norm2(h))))
        return self.head(self.norm_out(h).mean(dim=1))


@dataclass(frozen=True)
class Architecture:
    """A model family: how to build the default shape, and how to rebuild from a (maybe shrunk) state dict."""

    name: str
    dataset: str
    description: str
    build: Callable[[], nn.Module]
    from_state_dict: Callable[[Mapping[str, Tensor]], nn.Module]


def mlp_from_state_dict(state: Mapping[str, Tensor], in_features: int | None = None,
                        num_classes: int | None = None) -> MLP:
    """An MLP with the (maybe shrunk) hidden sizes of `state`; input and output sizes from `state` unless given."""
    n = sum(1 for k in state if k.startswith("fc") and k.endswith(".weight"))
    hidden = [_shape(state, f"fc{i}.weight")[0] for i in range(1, n)]
    return MLP(in_features or _shape(state, "fc1.weight")[1], hidden,
               num_classes or _shape(state, f"fc{n}.weight")[0])


def cnn_from_state_dict(state: Mapping[str, Tensor], image_size: int = 8) -> SmallCNN:
    """A SmallCNN with the (maybe shrunk) channel and hidden sizes of `state`."""
    channels = (_shape(state, "conv1.weight")[0], _shape(state, "conv2.weight")[0])
    return SmallCNN(image_size, channels, _shape(state, "fc1.weight")[0], _shape(state, "fc2.weight")[0])


def _mlp_from(in_features: int, num_classes: int) -> Callable[[Mapping[str, Tensor]], nn.Module]:
    return lambda state: mlp_from_state_dict(state, in_features, num_classes)


def _transformer_from(state: Mapping[str, Tensor]) -> nn.Module:
    head_dim = 8
    inner = _shape(state, "attn.q_proj.weight")[0]
    if inner % head_dim:
        raise InputError(f"attn.q_proj has {inner} outputs, not a multiple of the head size {head_dim}")
    return TinyTransformer(heads=inner // head_dim, head_dim=head_dim, ff=_shape(state, "ff1.weight")[0])


def _shape(state: Mapping[str, Tensor], key: str) -> tuple[int, ...]:
    if key not in state:
        raise InputError(f"these weights have no tensor {key!r}: they are for another architecture")
    return tuple(state[key].shape)


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("mlp", "digits", "MLP 64-100-10 on 8x8 digits: the classic small network",
                     lambda: MLP(64, (100,), 10), _mlp_from(64, 10)),
        Architecture("mlp-wide", "digits", "MLP 64-500-10 on 8x8 digits: the natural teacher",
                     lambda: MLP(64, (500,), 10), _mlp_from(64, 10)),
        Architecture("cnn", "digits", "Small CNN (conv 16, conv 32, pool, fc 64) on 1x8x8 digits",
                     lambda: SmallCNN(), cnn_from_state_dict),
        Architecture("transformer", "digits",
                     "Tiny transformer: the 8 rows of a digit are 8 tokens; 4 attention heads, one block",
                     lambda: TinyTransformer(), _transformer_from),
        Architecture("lenet-300-100", "fashion-mnist", "LeNet-300-100 (784-300-100-10) on 28x28 Fashion-MNIST",
                     lambda: MLP(784, (300, 100), 10), _mlp_from(784, 10)),
    )
}


def student_architecture(dataset: str) -> str:
    """The zoo MLP family that loads a distilled student (any hidden sizes) for `dataset`'s input shape."""
    return "lenet-300-100" if dataset == "fashion-mnist" else "mlp"


def get_architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise InputError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]
