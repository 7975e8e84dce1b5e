"""Layer-by-layer calibration, as the reference implementations run it.

The token ids go through the embeddings once; then each decoder layer in turn sees inputs produced by the
already-compressed layers before it: collect its linears' inputs, compress it, run it to feed the next layer.
Peak memory is the model plus one layer's calibration activations. Closing the generator stops after a layer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from compression.llm.layers import Family, decoder_layers, family_of, layer_linears


@dataclass(frozen=True)
class LayerReport:
    """What compressing one decoder layer measured."""

    errors: dict[str, float] = field(default_factory=dict)  # role -> ‖WX−ŴX‖²/‖WX‖² on its calibration inputs
    notes: tuple[str, ...] = ()  # e.g. "Cholesky failed at dampening 0.01; raised to 0.1"


@dataclass(frozen=True)
class LayerStep:
    """Progress: decoder layer `layer` (0-based) of `layers` is done."""

    layer: int
    layers: int
    seconds: float  # since the run started
    errors: dict[str, float]  # role (q/k/v/o/gate/up/down; GPT-2: qkv/o/up/down) -> relative output error
    notes: tuple[str, ...] = ()

    @property
    def fraction(self) -> float:
        return (self.layer + 1) / self.layers


# process(family, layer index, layer module, {role: inputs (tokens, in)}) compresses the layer in place
LayerProcess = Callable[[Family, int, nn.Module, dict[str, Tensor]], LayerReport]


class _Captured(Exception):
    """Raised by the hook on the first decoder layer: everything after it is not needed."""


@dataclass(frozen=True, eq=False)
class LayerCall:
    """How the model calls its decoder layers: the first layer's input plus the other arguments."""

    hidden: Tensor  # (batch, seq, d)
    args: tuple
    kwargs: dict

    def run(self, layer: nn.Module, hidden: Tensor) -> Tensor:
        out = layer(hidden, *self.args, **self.kwargs)
        return out[0] if isinstance(out, tuple) else out


@torch.no_grad()
def capture_layer_call(model: nn.Module, ids: Tensor) -> LayerCall:
    captured = {}

    def hook(module, args, kwargs):
        captured.update(args=args, kwargs=dict(kwargs))
        raise _Captured

    handle = decoder_layers(model)[0].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        model(input_ids=ids, use_cache=False)
    except _Captured:
        pass
    finally:
        handle.remove()
    args, kwargs = captured["args"], captured["kwargs"]
    hidden = args[0] if args else kwargs.pop("hidden_states")
    return LayerCall(hidden, tuple(args[1:]), kwargs)


@torch.no_grad()
def linear_inputs(layer: nn.Module, linears: dict[str, nn.Module], call: LayerCall,
                  hidden: Tensor) -> dict[str, Tensor]:
    """role -> the inputs its linear sees, (tokens, in), with the layer as it is now."""
    seen: dict[str, Tensor] = {}
    # Linears fed the same tensor (q, k, v) get one flattened object, so statistics can be cached by its id. The
    # input itself is kept too: a freed one's id could be reused by the next linear's input.
    flat: dict[int, tuple[Tensor, Tensor]] = {}

    def hook_for(role):
        def hook(module, args):
            x = args[0]
            seen[role] = flat.setdefault(id(x), (x, x.reshape(-1, x.shape[-1])))[1]
        return hook

    handles = [module.register_forward_pre_hook(hook_for(role)) for role, module in linears.items()]
    try:
        call.run(layer, hidden)
    finally:
        for handle in handles:
            handle.remove()
    return seen


@torch.no_grad()
def layerwise(model: nn.Module, ids: Tensor, process: LayerProcess) -> Generator[LayerStep, None, None]:
    """Compress `model` (a copy this code owns) layer by layer with `process`, yielding after each layer."""
    start = time.perf_counter()
    family = family_of(model)
    layers = decoder_layers(model)
    call = capture_layer_call(model, ids.to(next(model.parameters()).device))
    hidden = call.hidden
    for index, layer in enumerate(layers):
        inputs = linear_inputs(layer, layer_linears(family, layer), call, hidden)
        report = process(family, index, layer, inputs)
        del inputs
        hidden = call.run(layer, hidden)
        yield LayerStep(index, len(layers), time.perf_counter() - start, report.errors, report.notes)


def each_layer(model: nn.Module, process: LayerProcess) -> Generator[LayerStep, None, None]:
    """The same walk without calibration data (round-to-nearest, magnitude): no inputs, no errors."""
    start = time.perf_counter()
    family = family_of(model)
    layers = decoder_layers(model)
    for index, layer in enumerate(layers):
        report = process(family, index, layer, {})
        yield LayerStep(index, len(layers), time.perf_counter() - start, report.errors, report.notes)
