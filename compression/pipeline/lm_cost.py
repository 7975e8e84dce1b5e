"""What a compressed language model costs to run, measured: batch-1 decode and prefill speed and peak resident memory
(in a child process of its own), the bytes one decoded token reads (computed from the tensors the model holds), and
how closely the real kernels agree with the float model whose rounding they run.

The child (`python -m compression.pipeline.lm_child`) rebuilds the model from a folder (lm_deploy.save_deployed),
resets its peak-memory mark once the model is loaded (Linux: /proc/self/clear_refs), times it, and reads the mark:
the peak is the process running the model (Python, torch and transformers included; `runtime_rss_bytes` is that
process before the model was read, for reference).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from compression.core import settings
from compression.core.errors import InputError
from compression.core.threads import use_threads
from compression.core.hardware import (DEVICES, FITS, PREDICTION, PREDICTION_HERE, Bandwidth, DeviceClass, estimate,
                                       predicted_tokens_per_s, predicted_tokens_per_s_here)
from compression.calibration import is_weight_layer
from compression.lm import LanguageModel, perplexity
from compression.lm.speed import Speed, kv_bytes_per_token, measure_speed
from compression.pipeline.lm import LMResult
from compression.pipeline.lm_deploy import Deployed, deploy_dense, deploy_kernels, save_deployed
from compression.quantization import Int4Linear, Int8Linear

FITS_CONTEXT = 2048  # tokens of KV cache the "fits in memory?" estimate holds beside the weights
CHILD_TIMEOUT_S = 600


@dataclass(frozen=True)
class CostConfig:
    """How a model's cost is measured (batch 1, greedy decode of a fixed prompt)."""

    prompt_tokens: int = 256  # prefill is timed on this many tokens (fewer when the model's context is shorter)
    new_tokens: int = 32
    repeats: int = 5
    threads: int | None = None  # torch threads in the child; None: the server's policy (settings.torch_threads)
    in_child: bool = True  # measure in a child process, which also gives peak resident memory

    def __post_init__(self):
        for name in ("prompt_tokens", "new_tokens", "repeats"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
                raise InputError(f"{name} must be an integer from 1 to 4096, got {value!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or not 1 <= self.threads <= 256):
            raise InputError(f"threads must be from 1 to 256, got {self.threads!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Cost:
    """One model's measured speed and memory, and the bytes it reads per decoded token (computed)."""

    variant: str  # "dense float32", "int4pack", "int4pack + int8 head", ...
    speed: Speed
    weight_bytes_per_token: int  # computed: every tensor a decode step reads (an embedding: one row)
    kv_bytes_per_token: int  # computed: KV cache read per decode step at the decode's mean context
    resident_weight_bytes: int  # computed: every tensor the model holds
    peak_rss_bytes: int | None  # measured in the child: peak resident memory while decoding (None in-process)
    runtime_rss_bytes: int | None  # the child before it read the model (Python, torch, transformers)
    memory_method: str

    @property
    def bytes_per_token(self) -> int:
        return self.weight_bytes_per_token + self.kv_bytes_per_token

    def predicted_tokens_per_s(self, bandwidth_gb_s: float) -> float:
        """Estimate: bandwidth ÷ bytes per token."""
        return predicted_tokens_per_s(bandwidth_gb_s, self.bytes_per_token)

    def predicted_tokens_per_s_here(self, bandwidth_gb_s: float) -> float | None:
        """Estimate for this machine: the weights at bandwidth plus the time measured outside the weight layers
        (None when that was not timed)."""
        other = self.speed.decode_other_ms
        return None if other is None else predicted_tokens_per_s_here(bandwidth_gb_s, self.weight_bytes_per_token,
                                                                       other)

    def fits_bytes(self, model: nn.Module) -> int:
        """Estimate of the memory a device needs: every tensor plus a float16 KV cache of FITS_CONTEXT tokens."""
        return self.resident_weight_bytes + kv_bytes_per_token(model, FITS_CONTEXT, 2)

    def to_dict(self) -> dict:
        return {"variant": self.variant, **self.speed.to_dict(), "weight_bytes_per_token": self.weight_bytes_per_token,
                "kv_bytes_per_token": self.kv_bytes_per_token, "resident_weight_bytes": self.resident_weight_bytes,
                "peak_rss_bytes": self.peak_rss_bytes, "runtime_rss_bytes": self.runtime_rss_bytes,
                "memory_method": self.memory_method}


def _unique_tensors(model: nn.Module) -> dict[int, Tensor]:
    return {id(t): t for t in [*model.parameters(), *model.buffers()]}


def weight_bytes(model: nn.Module) -> tuple[int, int]:
    """(bytes a decode step reads, bytes the model holds): every tensor, but a lookup table that is not also the
    output head (token and position embeddings) only one row."""
    tensors = _unique_tensors(model)
    held = sum(t.numel() * t.element_size() for t in tensors.values())
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head_tensors = {id(t) for t in [*head.parameters(), *head.buffers()]} if head is not None else set()
    skipped = 0
    for module in model.modules():
        if isinstance(module, nn.Embedding) and id(module.weight) not in head_tensors:
            w = module.weight
            skipped += (w.shape[0] - 1) * w.shape[1] * w.element_size()
    return held - skipped, held


def reads_weights(module: nn.Module) -> bool:
    """A module that reads a weight matrix per token: a linear layer, GPT-2's Conv1D, or a real low-bit kernel."""
    return is_weight_layer(module) or isinstance(module, (Int4Linear, Int8Linear))


def prompt_ids(model: nn.Module, ids: Tensor, config: CostConfig) -> Tensor:
    """The fixed prompt: the first tokens of `ids` (held-out windows), as many as the model's context allows."""
    context = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", 1024)
    length = min(config.prompt_tokens, context - config.new_tokens - 1, ids.numel())
    if length < 1:
        raise InputError(f"the model reads {context} tokens: no room for a prompt before {config.new_tokens} new ones")
    return ids.reshape(-1)[:length].cpu()


def measure_cost(deployed: Deployed, prompt: Tensor, config: CostConfig) -> Cost:
    """Time `deployed` at batch 1 (in a child process unless config.in_child is False) and compute its bytes."""
    model = deployed.model
    per_token, held = weight_bytes(model)
    context = prompt.numel() + (config.new_tokens + 1) // 2
    kv = kv_bytes_per_token(model, context, next(model.parameters()).element_size())
    threads = config.threads or settings.torch_threads()
    if not config.in_child:
        previous = torch.get_num_threads()
        use_threads(threads)
        try:
            speed = measure_speed(model, prompt, config.new_tokens, config.repeats, weight_layer=reads_weights)
        finally:
            torch.set_num_threads(previous)
        return Cost(deployed.variant, speed, per_token, kv, held, None, None, "not measured (timed in-process)")
    with tempfile.TemporaryDirectory(prefix="clab-cost-") as tmp:
        folder = Path(tmp)
        save_deployed(deployed, folder)
        job = {"folder": str(folder), "prompt": prompt.tolist(), "new_tokens": config.new_tokens,
               "repeats": config.repeats, "threads": threads}
        out = run_child(job)
    return Cost(deployed.variant, Speed(**out["speed"]), per_token, kv, held, out["peak_rss_bytes"],
                out["runtime_rss_bytes"], out["memory_method"])


def run_child(job: dict) -> dict:
    """Run the measuring child on `job`; it writes its JSON answer to a file we name (the engine never prints)."""
    with tempfile.TemporaryDirectory() as folder:
        answer = Path(folder) / "answer.json"
        done = subprocess.run([sys.executable, "-m", "compression.pipeline.lm_child"],
                              input=json.dumps({**job, "answer": str(answer)}), capture_output=True, text=True,
                              timeout=CHILD_TIMEOUT_S, env={**os.environ, "OMP_NUM_THREADS": str(job["threads"])})
        if done.returncode != 0 or not answer.is_file():
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"the measuring process failed (exit {done.returncode}): {tail[:300]}")
        return json.loads(answer.read_text())


@dataclass(frozen=True)
class Agreement:
    """How the real-kernel model's outputs compare with the float (fake-quant) model's on the same tokens."""

    max_abs_logit_diff: float
    top1_agreement: float  # fraction of positions where both rank the same next token first
    perplexity_float: float
    perplexity_real: float
    top1_accuracy_float: float
    top1_accuracy_real: float
    tokens: int

    @property
    def perplexity_ratio(self) -> float:
        return self.perplexity_real / self.perplexity_float

    def to_dict(self) -> dict:
        return {**asdict(self), "perplexity_ratio": self.perplexity_ratio}


@torch.no_grad()
def agreement(float_model: nn.Module, real_model: nn.Module, ids: Tensor, logit_windows: int = 2) -> Agreement:
    """Perplexity and top-1 accuracy of both models on `ids`; max |logit difference| and top-1 agreement on its
    first `logit_windows` windows."""
    reference, real = perplexity(float_model, ids), perplexity(real_model, ids)
    window = ids[:logit_windows]
    a = float_model(input_ids=window, use_cache=False).logits.float()
    b = real_model(input_ids=window, use_cache=False).logits.float()
    same = (a.argmax(-1) == b.argmax(-1)).float().mean().item()
    return Agreement(float((a - b).abs().max()), same, reference.perplexity, real.perplexity, reference.top1,
                     real.top1, real.tokens)


def device_estimates(cost: Cost, model: nn.Module, devices: tuple[DeviceClass, ...]) -> list[dict]:
    """For each device class: fits in memory? and estimated decode tokens/s (estimates, never measured)."""
    return [estimate(d, cost.fits_bytes(model), cost.bytes_per_token).to_dict() for d in devices]


def summary(cost: Cost, dense: Cost, bandwidth: Bandwidth | None) -> dict:
    """The headline figures of one cost beside the dense float32 model's, flat for a table, the CLI and the history."""
    out = {"kernel": cost.variant, "decode_tokens_per_s": cost.speed.decode_tokens_per_s,
           "decode_tokens_per_s_min": cost.speed.decode_tokens_per_s_min,
           "decode_tokens_per_s_max": cost.speed.decode_tokens_per_s_max,
           "prefill_tokens_per_s": cost.speed.prefill_tokens_per_s,
           "dense_decode_tokens_per_s": dense.speed.decode_tokens_per_s,
           "decode_speedup": cost.speed.decode_tokens_per_s / dense.speed.decode_tokens_per_s,
           "prefill_speedup": cost.speed.prefill_tokens_per_s / dense.speed.prefill_tokens_per_s,
           "weight_bytes_per_token": cost.weight_bytes_per_token, "kv_bytes_per_token": cost.kv_bytes_per_token,
           "peak_memory_bytes": cost.peak_rss_bytes, "dense_peak_memory_bytes": dense.peak_rss_bytes,
           "threads": cost.speed.threads}
    if bandwidth is not None:
        out["bandwidth_gb_s"] = bandwidth.gb_s
        out["predicted_decode_tokens_per_s"] = cost.predicted_tokens_per_s(bandwidth.gb_s)
        out["predicted_decode_tokens_per_s_here"] = cost.predicted_tokens_per_s_here(bandwidth.gb_s)
    out["decode_weight_layers_ms"] = cost.speed.decode_weight_layers_ms
    out["decode_other_ms"] = cost.speed.decode_other_ms
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}


@dataclass(frozen=True)
class RunCost:
    """What one compressed run buys, measured beside the dense float32 model, with the estimates labelled."""

    dense: Cost
    cost: Cost
    agreement: Agreement | None  # None when nothing runs on a real kernel (pruned, W·A· or unmapped runs)
    bandwidth: Bandwidth | None
    devices: tuple[dict, ...]  # estimates per device class (fits in memory?, tokens/s)
    notes: tuple[str, ...]

    def to_dict(self) -> dict:
        out = summary(self.cost, self.dense, self.bandwidth)
        if self.bandwidth is not None:
            out["dense_predicted_decode_tokens_per_s"] = self.dense.predicted_tokens_per_s(self.bandwidth.gb_s)
            out["dense_predicted_decode_tokens_per_s_here"] = self.dense.predicted_tokens_per_s_here(
                self.bandwidth.gb_s)
        if self.agreement is not None:
            out.update({"real_perplexity": self.agreement.perplexity_real,
                        "real_top1_accuracy": self.agreement.top1_accuracy_real,
                        "real_perplexity_ratio": self.agreement.perplexity_ratio,
                        "max_abs_logit_diff": self.agreement.max_abs_logit_diff,
                        "top1_agreement": self.agreement.top1_agreement})
        out["cost"] = {"dense": self.dense.to_dict(), "run": self.cost.to_dict(),
                       "agreement": self.agreement.to_dict() if self.agreement else None,
                       "bandwidth": self.bandwidth.to_dict() if self.bandwidth else None,
                       "devices": list(self.devices), "notes": list(self.notes),
                       "estimates": {"predicted_decode_tokens_per_s": PREDICTION,
                                     "predicted_decode_tokens_per_s_here": PREDICTION_HERE, "fits": FITS}}
        return out


def run_cost(lm: LanguageModel, result: LMResult, evaluation: Tensor, config: CostConfig,
             dense: Cost | None = None, bandwidth: Bandwidth | None = None, head: str = "float",
             kernel: str = "auto", devices: tuple[DeviceClass, ...] = DEVICES) -> RunCost:
    """Measure `result` as it would be deployed (its quantized linears on real kernels where the grids map; a pruned
    or W·A· model as the dense float32 model it is) beside the dense model (`dense`, measured if not given)."""
    prompt = prompt_ids(lm.model, evaluation, config)
    dense = dense or measure_cost(deploy_dense(lm.model), prompt, config)
    deployed = deploy_kernels(result, kernel, head) if result.run.qtensors else None
    notes = []
    if deployed is None or not any(layer.kernel for layer in deployed.kernels.layers):
        if deployed is not None:
            notes += deployed.notes()
        notes.append(masked_note(result))
        deployed = Deployed(result.lm.model, "dense float32 (" + ("zeros kept" if result.sparsity() > 0.01 else
                                                                  "float weights") + ")")
        agree = None
    else:
        notes += deployed.notes()
        agree = agreement(result.lm.model, deployed.model, evaluation)
    cost = measure_cost(deployed, prompt, config)
    estimates = tuple(device_estimates(cost, lm.model, devices))
    return RunCost(dense, cost, agree, bandwidth, estimates, tuple(notes))


def masked_note(result: LMResult) -> str:
    """Why a pruned or fake-quantized model costs what the dense one costs."""
    if result.sparsity() > 0.01:
        return (f"{result.sparsity():.0%} of the linear weights are zero, but they are stored and multiplied as "
                "dense float32: a mask alone reads the same bytes and runs no faster without a sparse kernel.")
    return ("No real kernel runs this model's grids here, so it runs as the float32 model with rounded values: the "
            "same bytes and the same speed as dense.")
