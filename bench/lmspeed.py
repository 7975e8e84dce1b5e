"""What compression buys on this CPU: SmolLM2-135M at batch 1, dense against real low-bit kernels, measured in one run.

Prints, each figure with the 1-minute load average beside it (run it on a quiet machine):
- which low-bit kernels this torch build has, and one 1536×576 layer timed on each (float32 and bfloat16 inputs);
- this machine's copy bandwidth at 1 and 2 threads;
- per variant (dense float32 and bfloat16; RTN and GPTQ 4-bit on int4pack, with the output head float or int8;
  RTN 8-bit on int8pack; 2:4 and 50% magnitude pruning as the dense models they are): decode tokens/s (median and
  range over repeats), prefill tokens/s for a 256-token prompt, weight bytes read per token (computed), peak resident
  memory (measured in a child process), the estimate bandwidth ÷ bytes per token, the decode's time per token
  inside the weight layers and outside them (forward hooks, one more decode) with this machine's estimate from it
  (the weights' bytes at bandwidth + the time outside), and for real kernels the perplexity beside the fake-quant
  model's;
- the targets, each MET or MISSED: fastest real 4-/8-bit path ≥ 2× dense float32 decode (1 thread, the server's
  policy); predicted vs measured decode within 2× for dense and for that path (both estimates); real-kernel
  perplexity within 1% of fake-quant; a 4-bit GGUF (Q4_0) and a Q8_0 one read back with exactly the run's values.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from compression.core import run_to_end
from compression.core.hardware import DEVICES, measure_bandwidth
from compression.lm import calibration_ids, evaluation_ids, load_smollm2, load_text, perplexity
from compression.pipeline import (CostConfig, agreement, compress_lm, deploy_dense, deploy_kernels, lm_config,
                                  measure_cost, prompt_ids)
from compression.pipeline.lm_cost import device_estimates
from compression.pipeline.lm_export import _permute_rows, export_gguf

THREADS = (1, 2)
EVAL_SAMPLES, SEQ_LEN, CALIB_SAMPLES = 8, 256, 16
COST = dict(prompt_tokens=256, new_tokens=32, repeats=5)
if os.environ.get("LMSPEED_SMOKE"):  # only checks that the script runs end to end: its figures mean nothing
    EVAL_SAMPLES, CALIB_SAMPLES, COST = 2, 2, dict(prompt_tokens=64, new_tokens=2, repeats=1)
MIB = 2 ** 20


def load() -> str:
    return f"[load {os.getloadavg()[0]:.2f}]"


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _time(fn, repeats: int = 50) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e6


def kernels_here() -> None:
    """Each low-bit path this build offers, on one 1536×576 layer at batch 1, 1 thread, beside float32."""
    torch.set_num_threads(1)
    n, k = 1536, 576
    w = torch.randn(n, k) * 0.02
    x = torch.randn(1, k)
    print(f"  one {n}×{k} layer, batch 1, 1 thread {load()}:")
    print(f"    float32 F.linear                      {_time(lambda: torch.nn.functional.linear(x, w)):8.1f} µs")
    wb, xb = w.bfloat16(), x.bfloat16()
    print(f"    bfloat16 F.linear                     {_time(lambda: torch.nn.functional.linear(xb, wb)):8.1f} µs")
    q8 = torch.randint(-128, 127, (n, k), dtype=torch.int8)
    for dtype in (torch.bfloat16, torch.float32):
        xs, s = x.to(dtype), torch.rand(n).to(dtype)
        us = _time(lambda: torch.ops.aten._weight_int8pack_mm(xs, q8, s), 10 if dtype == torch.float32 else 50)
        print(f"    _weight_int8pack_mm, {str(dtype)[6:]:9s} inputs   {us:8.1f} µs")
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(torch.randint(0, 16, (n, k), dtype=torch.int32), 1)
    for dtype in (torch.bfloat16, torch.float32):
        xs, table = x.to(dtype), torch.rand(k // 64, n, 2).to(dtype)
        us = _time(lambda: torch.ops.aten._weight_int4pack_mm_for_cpu(xs, packed, 64, table),
                   10 if dtype == torch.float32 else 50)
        print(f"    _weight_int4pack_mm_for_cpu g64, {str(dtype)[6:]:9s} {us:8.1f} µs")
    try:
        weights = torch.randint(0, 16, (n, k), dtype=torch.uint8)
        packed4 = torch.ops.aten._dyn_quant_pack_4bit_weight(weights, torch.rand(n, k // 32), torch.zeros(n), 32, k, n)
        us = _time(lambda: torch.ops.aten._dyn_quant_matmul_4bit(x, packed4, 32, k, n))
        print(f"    _dyn_quant_matmul_4bit                {us:8.1f} µs (rounds activations to int8 too: not exact)")
    except RuntimeError as exc:
        print(f"    _dyn_quant_matmul_4bit: refused here ({str(exc).splitlines()[0][:80]}); it is KleidiAI's Arm "
              "path and rounds activations too")
    from torch.ao.quantization import quantize_dynamic  # deprecated API, kept to show its figure
    dynamic = quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(k, n, bias=False)), {torch.nn.Linear},
                               dtype=torch.qint8)
    print(f"    torch.ao dynamic int8 Linear          {_time(lambda: dynamic(x)):8.1f} µs (rounds activations to "
          "8 bits per tensor at run time: not the run's model, not used)")
    try:
        import torchao
        print(f"    torchao {torchao.__version__} imports; its CPU int4 layout is a prototype calling the same "
              "_weight_int4pack_mm_for_cpu, and Int8WeightOnlyConfig measured slower than float32 here: not used")
    except ImportError:
        print("    torchao: not installed (0.18.0 installs beside torch 2.13 CPU; its stable int4 layouts need CUDA "
              "or mslk, its CPU one is a prototype over the same aten kernel: not used)")
    print("    llama-cpp-python: no wheel for this platform on PyPI (sdist only, needs a C++ build): not built")


def line(name: str, cost, dense, bandwidth_gb_s: float, extra: str = "") -> str:
    s = cost.speed
    predicted = cost.predicted_tokens_per_s(bandwidth_gb_s)
    model_mib = (cost.peak_rss_bytes - cost.runtime_rss_bytes) / MIB if cost.peak_rss_bytes else float("nan")
    return (f"  {name:34s} decode {s.decode_tokens_per_s:6.1f} tok/s [{s.decode_tokens_per_s_min:5.1f}–"
            f"{s.decode_tokens_per_s_max:5.1f}] ({s.decode_tokens_per_s / dense.speed.decode_tokens_per_s:4.2f}× "
            f"dense)  prefill {s.prefill_tokens_per_s:6.0f} tok/s  weights {cost.weight_bytes_per_token / MIB:6.1f} "
            f"MiB/token (computed)  peak {(cost.peak_rss_bytes or 0) / MIB:5.0f} MiB (model {model_mib:4.0f})  "
            f"estimate {predicted:6.1f} tok/s (measured/estimate {s.decode_tokens_per_s / predicted:4.2f}); "
            f"{_here(cost, bandwidth_gb_s)} {extra}{load()}")


def _here(cost, bandwidth_gb_s: float) -> str:
    """The decode's split (inside the weight layers against their bytes at bandwidth, the rest) and this machine's
    estimate from it."""
    s, here = cost.speed, cost.predicted_tokens_per_s_here(bandwidth_gb_s)
    at_bandwidth_ms = cost.weight_bytes_per_token / (bandwidth_gb_s * 1e9) * 1e3
    return (f"per token {s.decode_weight_layers_ms:5.2f} ms in the weight layers (their bytes at bandwidth "
            f"{at_bandwidth_ms:5.2f} ms) + {s.decode_other_ms:5.2f} ms outside: estimate here {here:6.1f} tok/s "
            f"(measured/estimate {s.decode_tokens_per_s / here:4.2f})")


def gguf_check(lm, result, label: str) -> bool:
    """Export, read back with gguf.GGUFReader, compare every block-stored tensor with the run's values exactly."""
    import gguf
    from gguf.quants import dequantize
    heads, kv = lm.model.config.num_attention_heads, lm.model.config.num_key_value_heads
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.gguf"
        exported = export_gguf(result.lm, result.run.qtensors, path)
        reader = gguf.GGUFReader(str(path))
        stored = {t.name: t for t in reader.tensors}
        exact, compared = True, 0
        for layer in range(lm.model.config.num_hidden_layers):
            for ours, theirs, rows in (("self_attn.q_proj", "attn_q", heads), ("self_attn.k_proj", "attn_k", kv),
                                       ("mlp.down_proj", "ffn_down", None)):
                tensor = stored[f"blk.{layer}.{theirs}.weight"]
                if tensor.tensor_type.name not in ("Q4_0", "Q8_0"):
                    continue
                expected = result.run.qtensors[f"model.layers.{layer}.{ours}.weight"].dequantize().numpy()
                expected = _permute_rows(expected, rows) if rows else expected
                values = dequantize(tensor.data, tensor.tensor_type).reshape(expected.shape)
                exact &= bool(np.array_equal(values, expected))
                compared += 1
        print(f"  {label}: {exported.size_bytes / MIB:.1f} MiB, stored as {exported.counts()}; {compared} block "
              f"tensors read back with gguf.GGUFReader: {'identical' if exact else 'DIFFERENT'} "
              f"({verdict(exact and compared > 0)})")
        return exact and compared > 0


def main() -> None:
    print(f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.backends.cpu.get_cpu_capability()}) {load()}")
    print("Low-bit paths in this build:")
    kernels_here()
    bandwidth = {}
    for threads in THREADS:
        torch.set_num_threads(threads)
        bandwidth[threads] = measure_bandwidth()
        b = bandwidth[threads]
        print(f"Copy bandwidth, {threads} thread(s): {b.gb_s:.1f} GB/s [{b.gb_s_min:.1f}–{b.gb_s_max:.1f}] "
              f"(bytes copied per second, 256 MiB buffer; STREAM would count {2 * b.gb_s:.1f}) {load()}")
    torch.set_num_threads(1)
    lm = load_smollm2()
    text = load_text("kjv")
    evaluation = evaluation_ids(lm.tokenizer, text.evaluation, EVAL_SAMPLES, SEQ_LEN)
    calibration = calibration_ids(lm.tokenizer, text.calibration, CALIB_SAMPLES, SEQ_LEN)
    dense_ppl = perplexity(lm.model, evaluation)
    print(f"SmolLM2-135M: dense perplexity {dense_ppl.perplexity:.2f}, next-token top-1 {dense_ppl.top1:.1%} on "
          f"{dense_ppl.tokens} held-out KJV tokens {load()}")
    runs = {"rtn 4-bit g64": lm_config("rtn", bits=4, group_size=64),
            "gptq 4-bit g64": lm_config("gptq", bits=4, group_size=64),
            "rtn 4-bit g32 symmetric": lm_config("rtn", bits=4, group_size=32, scheme="symmetric"),
            "rtn 8-bit per-channel": lm_config("rtn", bits=8, group_size=0),
            "magnitude 2:4": lm_config("magnitude", nm=(2, 4)),
            "magnitude 50%": lm_config("magnitude", sparsity=0.5)}
    results = {}
    for name, config in runs.items():
        results[name] = run_to_end(compress_lm(lm, config, calibration if config.needs_calibration else None))
    quality, real_models = {}, {}
    for name in ("rtn 4-bit g64", "gptq 4-bit g64", "rtn 8-bit per-channel"):
        for head in ("float", "int8"):
            deployed = deploy_kernels(results[name], head=head)
            a = agreement(results[name].lm.model, deployed.model, evaluation)
            quality[(name, head)] = a
            real_models[(name, head)] = deployed
            print(f"  {name} on {deployed.variant}: real-kernel perplexity {a.perplexity_real:.3f} vs fake-quant "
                  f"{a.perplexity_float:.3f} (×{a.perplexity_ratio:.4f}), top-1 {a.top1_accuracy_real:.1%} vs "
                  f"{a.top1_accuracy_float:.1%}, top-1 agreement {a.top1_agreement:.1%}, max |Δlogit| "
                  f"{a.max_abs_logit_diff:.3f} {load()}")
    costs = {}
    for threads in THREADS:
        config = CostConfig(**COST, threads=threads)
        prompt = prompt_ids(lm.model, evaluation, config)
        print(f"Batch 1, {threads} thread(s), {COST['prompt_tokens']}-token prompt, {COST['new_tokens']} greedy "
              f"tokens × {COST['repeats']} repeats (median [range]); each variant in a child process of its own:")
        dense = measure_cost(deploy_dense(lm.model), prompt, config)
        b = bandwidth[threads].gb_s
        print(line("dense float32", dense, dense, b))
        print(line("dense bfloat16", measure_cost(deploy_dense(lm.model, torch.bfloat16), prompt, config), dense, b))
        for (name, head), deployed in real_models.items():
            cost = measure_cost(deployed, prompt, config)
            costs[(threads, name, head)] = cost
            print(line(f"{name}: {deployed.variant}", cost, dense, b))
        for name in ("magnitude 2:4", "magnitude 50%"):
            print(line(f"{name} (mask only)", measure_cost(deploy_dense(results[name].lm.model), prompt, config),
                       dense, b, "zeros stored and multiplied: "))
        costs[(threads, "dense", "")] = dense
    print("Targets (1 thread, the server's policy):")
    dense = costs[(1, "dense", "")]
    low = {key: cost for key, cost in costs.items() if key[0] == 1 and key[1] != "dense"}
    fastest_key = max(low, key=lambda key: low[key].speed.decode_tokens_per_s)
    fastest = low[fastest_key]
    ratio = fastest.speed.decode_tokens_per_s / dense.speed.decode_tokens_per_s
    print(f"  fastest real low-bit path: {fastest_key[1]} on {fastest.variant}, {ratio:.2f}× dense float32 decode "
          f"(target ≥ 2×: {verdict(ratio >= 2.0)}) {load()}")
    for key, cost in sorted(low.items(), key=lambda kv: -kv[1].speed.decode_tokens_per_s):
        print(f"    {key[1]} on {cost.variant}: {cost.speed.decode_tokens_per_s / dense.speed.decode_tokens_per_s:.2f}×")
    b1 = bandwidth[1].gb_s
    for label, cost in (("dense float32", dense), (f"fastest ({fastest.variant})", fastest)):
        r = cost.speed.decode_tokens_per_s / cost.predicted_tokens_per_s(b1)
        here = cost.speed.decode_tokens_per_s / cost.predicted_tokens_per_s_here(b1)
        print(f"  measured/estimated decode, {label}: bandwidth only {r:.2f} (= {b1:.1f} GB/s ÷ "
              f"{cost.bytes_per_token / MIB:.1f} MiB per token, an upper bound; within 2×: {verdict(0.5 <= r <= 2.0)}); "
              f"this machine's estimate {here:.2f} (the weights' {cost.weight_bytes_per_token / MIB:.1f} MiB at "
              f"{b1:.1f} GB/s + {cost.speed.decode_other_ms:.2f} ms measured outside the weight layers; within 2×: "
              f"{verdict(0.5 <= here <= 2.0)})")
    worst = max(quality.values(), key=lambda a: abs(a.perplexity_ratio - 1))
    print(f"  real-kernel perplexity vs fake-quant: worst ×{worst.perplexity_ratio:.4f} over {len(quality)} "
          f"models (target within 1%: {verdict(abs(worst.perplexity_ratio - 1) <= 0.01)})")
    gguf_check(lm, results["rtn 4-bit g32 symmetric"], "GGUF Q4_0 of RTN 4-bit g32 symmetric")
    gguf_check(lm, results["rtn 4-bit g64"], "GGUF Q8_0 of RTN 4-bit g64 asymmetric (Q4_0 holds no zero point)")
    print("Estimates for the fastest path on device classes (published figures; estimates, not measurements):")
    for e in device_estimates(fastest, lm.model, DEVICES):
        print(f"  {e['device']}: {'fits' if e['fits'] else 'does not fit'} ({e['needed_bytes'] / MIB:,.0f} MiB of "
              f"{e['memory_bytes'] / MIB:,.0f}), ~{e['tokens_per_s']:,.0f} tokens/s")
