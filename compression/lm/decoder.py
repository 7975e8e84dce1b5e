"""Running a causal LM one decoder layer at a time, as layer-by-layer calibration does.

The token ids go through the embeddings once (captured at the first decoder layer's call); then each layer is
run by itself on the hidden states the layers before it produced. Peak memory is the model plus one layer's
calibration activations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from compression.calibration import matrix_inputs


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
def capture_layer_call(model: nn.Module, first_layer: nn.Module, ids: Tensor) -> LayerCall:
    """The arguments `model` passes its first decoder layer for token ids `ids` (nothing after it runs)."""
    captured = {}

    def hook(module, args, kwargs):
        captured.update(args=args, kwargs=dict(kwargs))
        raise _Captured

    handle = first_layer.register_forward_pre_hook(hook, with_kwargs=True)
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
            seen[role] = flat.setdefault(id(x), (x, matrix_inputs(module, x)))[1]
        return hook

    handles = [module.register_forward_pre_hook(hook_for(role)) for role, module in linears.items()]
    try:
        call.run(layer, hidden)
    finally:
        for handle in handles:
            handle.remove()
    return seen
