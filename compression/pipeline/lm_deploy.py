"""A compressed language model as it would be deployed: its quantized linears on real low-bit kernels (from the run's
own codes and grids), optionally its output head as int8; and the folder a child process rebuilds it from.

The folder holds config.json, the model's tensors (safetensors: kernel buffers as they are, a tied tensor once) and
layout.json (which modules are kernel modules, which tensors are aliases of others, which dtype the model runs in).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM
from transformers.initialization import no_init_weights

from compression.pipeline.lm import LMResult
from compression.quantization import QuantConfig
from compression.quantization.deploy import KernelModel, to_kernels
from compression.quantization.kernels import Int4Linear, Int8Embedding, Int8Linear
from compression.quantization.tensors import quantize_tensor

HEADS = ("float", "int8")  # the output head as the run left it, or rounded to int8 per output row for the kernel
HEAD_GRID = QuantConfig(bits=8, scheme="symmetric", granularity="per-channel")
STATE, LAYOUT, CONFIG = "state.safetensors", "layout.json", "config.json"


@dataclass(frozen=True, eq=False)
class Deployed:
    """A model ready to time, its name in the cost table, and what each quantized layer runs on."""

    model: nn.Module
    variant: str
    kernels: KernelModel | None = None
    head: str = "float"

    def notes(self) -> list[str]:
        notes = self.kernels.notes() if self.kernels else []
        if self.head == "int8":
            notes.append("The output head (and the embedding tied to it) is rounded to 8 bits per output row for "
                         "the int8 kernel: the compression run left it float, so its perplexity is measured apart.")
        return notes


def deploy_dense(model: nn.Module, dtype: torch.dtype = torch.float32) -> Deployed:
    """The dense model (pruned weights stay dense zeros) in float32 or bfloat16."""
    name = {torch.float32: "float32", torch.bfloat16: "bfloat16"}[dtype]
    return Deployed(model if dtype == torch.float32 else _copy_to(model, dtype), f"dense {name}")


def _copy_to(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    return copy.deepcopy(model).to(dtype)


def deploy_kernels(result: LMResult, kernel: str = "auto", head: str = "float") -> Deployed:
    """The run's quantized linears on real kernels (a copy; the run's model is unchanged)."""
    if head not in HEADS:
        raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
    kernels = to_kernels(result.lm.model, result.run.qtensors, kernel)
    model = kernels.model
    if head == "int8":
        model = int8_head(model)
    used = sorted(k for k in kernels.kernels() if k != "float") or ["float"]
    return Deployed(model, " + ".join(used) + (" + int8 head" if head == "int8" else ""), kernels, head)


def int8_head(model: nn.Module) -> nn.Module:
    """`model` (changed and returned) with its output head on the int8 kernel; a tied input embedding reads the same
    codes."""
    head = model.get_output_embeddings()
    tied = head.weight is model.get_input_embeddings().weight
    qtensor = quantize_tensor(head.weight.detach().float(), 8, HEAD_GRID)
    new = Int8Linear.from_qtensor(qtensor, getattr(head, "bias", None))
    model.set_output_embeddings(new)
    if tied:
        model.set_input_embeddings(Int8Embedding.from_head(new))
    return model


def save_deployed(deployed: Deployed, folder: Path) -> None:
    """Write what `load_deployed` rebuilds the model from (config, tensors, layout)."""
    model = deployed.model
    folder.mkdir(parents=True, exist_ok=True)
    layout, aliases, state, owners = {}, {}, {}, {}
    for path, module in model.named_modules():
        if isinstance(module, Int4Linear):
            layout[path] = {"kind": "int4pack", "group_size": module.group_size, "in": module.in_features,
                            "out": module.out_features}
        elif isinstance(module, Int8Linear):
            layout[path] = {"kind": "int8pack"}
        elif isinstance(module, Int8Embedding):
            layout[path] = {"kind": "int8embedding"}
    for key, tensor in model.state_dict(keep_vars=True).items():
        owner = owners.get(id(tensor))
        if owner is not None:
            aliases[key] = owner
            continue
        owners[id(tensor)] = key
        state[key] = tensor.detach().contiguous()
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    save_file(state, str(folder / STATE))
    (folder / LAYOUT).write_text(json.dumps({"modules": layout, "aliases": aliases, "dtype": dtype}))
    (folder / CONFIG).write_text(json.dumps(model.config.to_dict()))


def load_deployed(folder: Path) -> nn.Module:
    """The model `save_deployed` wrote, rebuilt from its own tensors (no weight is initialised or rounded again)."""
    layout = json.loads((folder / LAYOUT).read_text())
    config_dict = json.loads((folder / CONFIG).read_text())
    config = AutoConfig.for_model(**config_dict)
    with no_init_weights():  # allocated, not initialised: every tensor is replaced by the folder's below
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, layout["dtype"]))
    # Each tensor gets memory of its own: after a forward pass reading load_file's tensors as they came, a later
    # int8pack call crashed the process (SIGSEGV; reproduced with tests/test_lm_deploy.py's round trip).
    state = {k: v.clone() for k, v in load_file(str(folder / STATE)).items()}
    for key, owner in layout["aliases"].items():
        state[key] = state[owner]  # one tensor under both names, as saved
    modules = layout["modules"]
    for path, spec in modules.items():
        tensors = {k.removeprefix(f"{path}."): v for k, v in state.items() if k.startswith(f"{path}.")}
        if spec["kind"] == "int4pack":
            new = Int4Linear(tensors["packed"], tensors["scales_and_offsets"], spec["group_size"], spec["in"],
                             spec["out"], tensors.get("bias"))
        elif spec["kind"] == "int8pack":
            new = Int8Linear(tensors["codes"], tensors["scales"], tensors.get("correction"), tensors.get("bias"))
        else:
            new = Int8Embedding(tensors["codes"], tensors["scales"], tensors.get("correction"))
        _replace(model, path, new)
    plain = {k: v for k, v in state.items() if not any(k.startswith(f"{p}.") for p in modules)}
    model.load_state_dict(plain, strict=False, assign=True)
    for key, owner in layout["aliases"].items():  # a tied weight: one Parameter under both names
        if key in plain:
            _set_tensor(model, key, _tensor_at(model, owner))
    return model.eval().requires_grad_(False)


def _replace(model: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, child = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def _tensor_at(model: nn.Module, key: str) -> torch.Tensor:
    path, _, name = key.rpartition(".")
    return getattr(model.get_submodule(path) if path else model, name)


def _set_tensor(model: nn.Module, key: str, tensor: torch.Tensor) -> None:
    path, _, name = key.rpartition(".")
    module = model.get_submodule(path) if path else model
    if isinstance(tensor, nn.Parameter):
        setattr(module, name, tensor)
    else:
        module.register_buffer(name, tensor)
