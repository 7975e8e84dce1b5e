"""Quantization targets, each next to its reference measured in the same run.

- `bits` slider move (AppTest, median ms) on mlp and cnn, next to a rerun with nothing changed
- PTQ 4-bit per-channel vs fp32 on mlp and cnn
- QAT 3-bit and 2-bit per-channel vs fp32, vs PTQ, and vs the same extra epochs in plain fp32 (the control)
- real int8 vs fp32 on a 1024-4096-4096-10 MLP at batch 256: speed-up and file-size ratio
- packed 4-bit mlp file vs the fp32 torch.save file, and decoded outputs identical
"""

from __future__ import annotations

import os

import torch

from bench._apptest import slider_move_ms
from compression.core import run_to_end
from compression.core.settings import TORCH_THREADS_ENV, torch_threads
from compression.models import load_zoo
from compression.quantization import QATConfig, QuantConfig, load_packed, qat_with_control, quantize
from compression.quantization.int8 import LARGE_MLP, TorchAOQuantization, large_mlp_int8
from compression.training import TrainConfig

SLIDER_BITS = [3, 5, 2, 6, 4, 8, 3, 7, 5, 4, 2, 6, 3, 8, 4, 5, 7, 2, 4, 6]


def _slider_ms(model: str) -> tuple[float, float]:
    return slider_move_ms(model, "pages/quantize.py", "bits", SLIDER_BITS)


def main() -> None:
    default_threads = torch.get_num_threads()
    policy = torch_threads()
    print(f"torch {torch.__version__}, {default_threads} threads by torch's default, {policy} by the server's policy "
          f"(${TORCH_THREADS_ENV})")
    targets = {"mlp": 50.0, "cnn": 100.0}
    # app.py applies the server's thread policy on every rerun; torch's own default is timed beside it, the
    # measurement the policy rests on (README, "Running for a class").
    for threads in (policy, *sorted({default_threads} - {policy})):
        os.environ[TORCH_THREADS_ENV] = str(threads)
        kind = "server policy" if threads == policy else "torch default"
        for name, target in targets.items():
            move, rerun = _slider_ms(name)
            verdict = f"(target <= {target:.0f}) -> {'MET' if move <= target else 'MISSED'}" if threads == policy \
                else "(reference)"
            print(f"bits slider move  {name:4s} ({threads} thread{'s' if threads > 1 else ''}, {kind}): median "
                  f"{move:6.1f} ms {verdict} | rerun with no change {rerun:6.1f} ms")
    os.environ[TORCH_THREADS_ENV] = str(policy)
    torch.set_num_threads(default_threads)
    _ptq()
    _qat()
    _int8(default_threads)
    _packed()


def _ptq() -> None:
    for name in ("mlp", "cnn"):
        model = load_zoo(name)
        result = quantize(model, QuantConfig(bits=4, granularity="per-channel"))
        drop = (result.baseline_accuracy - result.accuracy) * 100
        print(f"PTQ 4-bit per-channel {name:4s}: {result.accuracy:.4f} vs fp32 {result.baseline_accuracy:.4f} "
              f"({-drop:+.2f} points; target within 1) -> {'MET' if drop <= 1.0 else 'MISSED'}")


def _qat() -> None:
    for name in ("mlp", "cnn"):
        model = load_zoo(name)
        for bits, limit in ((3, 1.0), (2, 2.0)):
            config = QATConfig(QuantConfig(bits=bits, granularity="per-channel"), TrainConfig(epochs=10, lr=1e-3))
            result = run_to_end(qat_with_control(model, config))
            q, c = result.qat, result.control
            drop = (q.baseline_accuracy - q.accuracy) * 100
            print(f"QAT {bits}-bit per-channel {name:4s} (10 epochs): {q.accuracy:.4f} "
                  f"vs fp32 {q.baseline_accuracy:.4f} "
                  f"({-drop:+.2f} points; target within {limit:.0f}) -> {'MET' if drop <= limit else 'MISSED'} "
                  f"| PTQ {q.ptq_accuracy:.4f} | control: fp32 +10 epochs {c.accuracy:.4f}, then PTQ "
                  f"{c.ptq_accuracy:.4f}")


def _int8(default_threads: int) -> None:
    dims = "-".join(str(d) for d in (LARGE_MLP[0], *LARGE_MLP[1], LARGE_MLP[2]))
    # The default engine (x86: fbgemm) and oneDNN, whose kernels win on these large Linear layers here
    runs = [(t, m, e) for t in sorted({1, default_threads}) for m in ("dynamic", "static") for e in (None, "onednn")]
    for threads, mode, engine in runs:
        torch.set_num_threads(threads)
        large = large_mlp_int8(batch_size=256, repeats=20, mode=mode, backend=TorchAOQuantization(engine))
        print(f"real int8 ({large.backend}, {large.mode}) {dims} MLP, batch {large.batch_size}, {threads} thread(s), "
              f"timed in turns: {large.latency_ms:.1f} ms vs fp32 {large.baseline_latency_ms:.1f} ms = "
              f"{large.speedup:.2f}x faster (target >= 4) -> {'MET' if large.speedup >= 4 else 'MISSED'}; file "
              f"{large.size_bytes:,} vs {large.baseline_size_bytes:,} bytes = {large.size_ratio:.2f}x smaller "
              f"(target >= 3.5) -> {'MET' if large.size_ratio >= 3.5 else 'MISSED'}")
    torch.set_num_threads(default_threads)


def _packed() -> None:
    model = load_zoo("mlp")
    result = quantize(model, QuantConfig(bits=4, granularity="per-channel"))
    decoded = load_packed(result.packed)
    rebuilt = result.to_model().module
    clone = result.to_model().module
    clone.load_state_dict(decoded)
    x = model.dataset.x_test
    with torch.no_grad():
        identical = torch.equal(clone(x), rebuilt(x))
    ratio = result.baseline_size_bytes / result.size_bytes
    print(f"packed 4-bit mlp file: {result.size_bytes:,} bytes vs fp32 torch.save {result.baseline_size_bytes:,} bytes "
          f"= 1/{ratio:.2f} (target <= 1/6) -> {'MET' if ratio >= 6 else 'MISSED'}; decoded outputs identical: "
          f"{identical}")
