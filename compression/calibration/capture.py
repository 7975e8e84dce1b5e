"""Layer-by-layer calibration, as the reference implementations run it, for any model given its block map.

A block is what is compressed together: a decoder layer of a language model, or one weight layer of an MLP or
CNN. Each block sees inputs produced by the already-compressed blocks before it: capture its linears' inputs,
compress it, then run it to feed the next one. Closing the generator stops after the current block.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor, nn

from compression.calibration.layers import is_weight_layer, matrix_inputs
from compression.core.errors import InputError


@dataclass(frozen=True, eq=False)
class Block:
    """Weight layers compressed together, and the ops inside the block that a per-channel scale can fold into."""

    name: str
    linears: dict[str, nn.Module]  # role -> weight layer, in forward order
    # (op, roles): a norm (or any op with per-channel weight and bias) whose output feeds these roles
    norm_groups: tuple[tuple[nn.Module, tuple[str, ...]], ...] = ()
    # (role, roles): a linear whose output rows feed these roles through an op that commutes with a positive
    # per-channel scale (ReLU, a product with another branch), so the scale moves exactly into its rows
    linear_groups: tuple[tuple[str, tuple[str, ...]], ...] = ()
    weight_names: dict[str, str] = field(default_factory=dict)  # role -> the weight's name in the state dict
    no_clip: tuple[str, ...] = ()  # roles AWQ's reference leaves unclipped (q and k, which feed attention scores)
    module: nn.Module | None = None  # what runs the block (a decoder layer), for maps that run blocks themselves


@dataclass(frozen=True)
class BlockReport:
    """What compressing one block measured."""

    errors: dict[str, float] = field(default_factory=dict)  # role -> ‖WX−ŴX‖²/‖WX‖² on its calibration inputs
    notes: tuple[str, ...] = ()  # e.g. "Cholesky failed at dampening 0.01; raised to 0.1"


@dataclass(frozen=True)
class BlockStep:
    """Progress: block `index` (0-based) of `blocks` is done."""

    index: int
    blocks: int
    name: str
    seconds: float  # since the run started
    errors: dict[str, float]  # role -> relative output error on calibration inputs
    notes: tuple[str, ...] = ()

    @property
    def fraction(self) -> float:
        return (self.index + 1) / self.blocks


# process(block index, block, {role: inputs (tokens, in)}) compresses the block's weights in place
BlockProcess = Callable[[int, Block, dict[str, Tensor]], BlockReport]


class BlockMap(Protocol):
    """How a model family's blocks are found and fed: data the techniques are given, never look up themselves."""

    def blocks(self, model: nn.Module) -> list[Block]:
        """The blocks of `model` in forward order."""

    def start(self, model: nn.Module, inputs: Tensor) -> object:
        """Whatever feeds the first block, from the model's own inputs."""

    def block_inputs(self, model: nn.Module, block: Block, state: object) -> dict[str, Tensor]:
        """role -> the (tokens, in) inputs of each of the block's linears, with the model as it is now."""

    def advance(self, model: nn.Module, block: Block, state: object) -> object:
        """What feeds the next block, after this one has been compressed."""


class _Captured(Exception):
    """Raised by a capture hook: the rest of the forward pass is not needed."""


@dataclass(frozen=True)
class WeightLayers:
    """Any model: every Linear/Conv layer is a block of its own, in the order the forward pass reaches them.

    To capture a layer's inputs it runs the model from its inputs up to that layer (and no further), so every
    layer sees what the already-compressed layers before it produce.
    """

    exclude: tuple[str, ...] = ()  # names of weight layers left out of the walk (compressed by nobody)

    def blocks(self, model: nn.Module) -> list[Block]:
        return [Block(name, {name: module}, weight_names={name: f"{name}.weight"})
                for name, module in model.named_modules() if is_weight_layer(module) and name not in self.exclude]

    def start(self, model: nn.Module, inputs: Tensor) -> object:
        return inputs

    @torch.no_grad()
    def block_inputs(self, model: nn.Module, block: Block, state: object) -> dict[str, Tensor]:
        (role, module), = block.linears.items()
        seen = {}

        def hook(_module, args):
            seen["x"] = args[0]
            raise _Captured

        handle = module.register_forward_pre_hook(hook)
        try:
            model(state)
        except _Captured:
            pass
        finally:
            handle.remove()
        if "x" not in seen:
            return {}  # a layer the forward pass never reaches: nothing to calibrate on
        return {role: matrix_inputs(module, seen["x"]).float()}

    def advance(self, model: nn.Module, block: Block, state: object) -> object:
        return state


@torch.no_grad()
def walk(model: nn.Module, block_map: BlockMap, inputs: Tensor | None,
         process: BlockProcess) -> Generator[BlockStep, None, None]:
    """Compress `model` (a copy the caller owns) block by block with `process`, yielding after each block.

    Without `inputs` (round-to-nearest, magnitude) every block gets no inputs and reports no errors.
    """
    start = time.perf_counter()
    blocks = block_map.blocks(model)
    state = block_map.start(model, inputs) if inputs is not None else None
    for index, block in enumerate(blocks):
        x = block_map.block_inputs(model, block, state) if inputs is not None else {}
        report = process(index, block, x)
        del x
        if inputs is not None and index + 1 < len(blocks):
            state = block_map.advance(model, block, state)
        yield BlockStep(index, len(blocks), block.name, time.perf_counter() - start, report.errors, report.notes)


def _dense_inputs(model: nn.Module, block_map: BlockMap, inputs: Tensor,
                  last: int | None = None) -> Iterator[tuple[int, Block, dict[str, Tensor]]]:
    """(block index, block, {role: inputs (tokens, in)}) of each block up to `last`, on the model as it is."""
    state = block_map.start(model, inputs)
    blocks = block_map.blocks(model)
    for index, block in enumerate(blocks[: None if last is None else last + 1]):
        yield index, block, block_map.block_inputs(model, block, state)
        if index + 1 < len(blocks):
            state = block_map.advance(model, block, state)


@torch.no_grad()
def input_norms(model: nn.Module, block_map: BlockMap, inputs: Tensor) -> dict[str, Tensor]:
    """‖X_j‖₂ of every input channel of every weight layer, on the model as it is (nothing is compressed).

    Few channels far louder than the rest (activation outliers) are what Wanda, AWQ and SmoothQuant exploit.
    """
    return {block.weight_names.get(role, role): x.float().pow(2).sum(0).sqrt()
            for _, block, found in _dense_inputs(model, block_map, inputs) for role, x in found.items()}


@torch.no_grad()
def input_ranges(model: nn.Module, block_map: BlockMap, inputs: Tensor) -> dict[tuple[int, str], Tensor]:
    """max|x_j| of every input channel of every weight layer, {(block index, role): (in,)}, on the model as it is:
    where the activation outliers are (the largest channel over the median one)."""
    return {(index, role): x.abs().amax(0).float()
            for index, _, found in _dense_inputs(model, block_map, inputs) for role, x in found.items()}


@torch.no_grad()
def layer_inputs(model: nn.Module, block_map: BlockMap, inputs: Tensor, index: int) -> tuple[Block, dict[str, Tensor]]:
    """Block `index` and the inputs (tokens, in) of its weight layers, on the model as it is (nothing compressed):
    the data a view of one layer's compression is computed on."""
    count = len(block_map.blocks(model))
    if not 0 <= index < count:
        raise InputError(f"block must be from 0 to {count - 1}, got {index}")
    *_, (_, block, found) = _dense_inputs(model, block_map, inputs, index)
    return block, found
