"""One technique, any model: SparseGPT, Wanda, GPTQ and AWQ on the digits models, each next to its reference.

- the Pruning page's `sparsity` slider with SparseGPT chosen, and the Quantization page's `bits` slider with GPTQ
  chosen (AppTest set_value + run, median ms, one torch thread: the server's policy), beside the same slider with
  magnitude / round-to-nearest chosen, measured in the same run (targets 100 ms on mlp, 250 ms on cnn)
- the one-shot table: magnitude (per layer), Wanda and SparseGPT at 50-90% on mlp and cnn, calibrated layer by
  layer on 512 training images, no fine-tuning; RTN, GPTQ and AWQ at 2-4 bits per channel (asymmetric)
"""

from __future__ import annotations

import time

import torch

from bench._apptest import slider_move_ms
from compression.calibration import calibration_images
from compression.models import load_zoo
from compression.pruning import CALIBRATION_SAMPLES, PruneConfig, prune
from compression.quantization import QuantConfig, quantize

SPARSITY = [0.55, 0.7, 0.35, 0.9, 0.6, 0.8, 0.2, 0.95, 0.5, 0.75, 0.4, 0.85]
BITS = [3, 5, 2, 6, 4, 8, 3, 7, 2, 4, 5, 3]
TARGET_MS = {"mlp": 100.0, "cnn": 250.0}
AMOUNTS = (0.5, 0.7, 0.8, 0.9)


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def main() -> None:
    torch.set_num_threads(1)  # the server's thread policy, and both sides of every ratio alike
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread")
    _slider_moves()
    for name in ("mlp", "cnn"):
        _pruning_table(name)
        _quantization_table(name)


def _slider_moves() -> None:
    for name, target in TARGET_MS.items():
        load_zoo(name)
        for page, key, values, method, reference in (
                ("pages/prune.py", "sparsity", SPARSITY, ("prune_method", "SparseGPT"), ("prune_method", "magnitude")),
                ("pages/quantize.py", "bits", BITS, ("q_method", "GPTQ"), ("q_method", "RTN"))):
            base, _ = slider_move_ms(name, page, key, values, dict([reference]))
            move, rerun = slider_move_ms(name, page, key, values, dict([method]))
            print(f"{name} {key} slider with {method[1]}: median {move:.0f} ms (target <= {target:.0f}: "
                  f"{verdict(move <= target)}); {reference[1]} {base:.0f} ms ({move / base:.2f}x); "
                  f"rerun with nothing changed {rerun:.0f} ms", flush=True)


def _pruning_table(name: str) -> None:
    model = load_zoo(name)
    images = calibration_images(model.dataset, CALIBRATION_SAMPLES)
    dense = model.evaluate().accuracy
    print(f"{name}: one-shot pruning, dense {dense:.1%} on {len(model.dataset.y_test)} held-out images "
          f"(calibration: {len(images)} training images)")
    found = {}
    for amount in AMOUNTS:
        row = []
        for method, scope in (("magnitude", "layer"), ("wanda", "row"), ("sparsegpt", "row")):
            start = time.perf_counter()
            accuracy = prune(model, PruneConfig(amount=amount, method=method, scope=scope), images).accuracy
            found[(method, amount)] = accuracy
            row.append(f"{method} {accuracy:6.1%} ({(time.perf_counter() - start) * 1e3:4.0f} ms)")
        print(f"  {amount:4.0%}: " + " | ".join(row), flush=True)
    if name == "mlp":
        sgpt, mag = found[("sparsegpt", 0.8)], found[("magnitude", 0.8)]
        print(f"  SparseGPT at 80%: {sgpt:.1%}, {100 * (sgpt - mag):+.1f} points over magnitude (target >= +10 and "
              f">= 93%: {verdict(sgpt - mag >= 0.10 and sgpt >= 0.93)})")


def _quantization_table(name: str) -> None:
    model = load_zoo(name)
    images = calibration_images(model.dataset, CALIBRATION_SAMPLES)
    print(f"{name}: one-shot weight quantization, per channel, asymmetric")
    found = {}
    for bits in (2, 3, 4):
        row = []
        for method in ("rtn", "gptq", "awq"):
            start = time.perf_counter()
            result = quantize(model, QuantConfig(bits=bits, scheme="asymmetric", method=method), calibration=images)
            found[(method, bits)] = result.accuracy
            row.append(f"{method} {result.accuracy:6.1%} ({(time.perf_counter() - start) * 1e3:4.0f} ms)")
        print(f"  {bits}-bit: " + " | ".join(row), flush=True)
    gptq, rtn = found[("gptq", 2)], found[("rtn", 2)]
    print(f"  GPTQ at 2 bits {gptq:.1%} vs RTN {rtn:.1%} (target: at or above RTN: {verdict(gptq >= rtn)})")
