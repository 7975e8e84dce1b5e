"""Issue 6 targets: Deep-Compression ratios of real .clab files, accuracy measured after decoding.

Reference in the same run: zlib (level 9) on the same decoded weights' fp32 torch.save file.
"""

import time
import zlib

import torch

from compression.data import fashion_mnist_available
from compression.metrics import state_dict_of, torch_save_bytes
from compression.models import load_clab, load_zoo
from compression.pipeline import PipelineConfig, run_pipeline

# Default seed; settings per model chosen by a small sweep on this machine (see README).
CONFIGS = {
    "mlp": PipelineConfig(sparsity=0.9, codebook_bits=4, finetune_epochs=100, finetune_lr=3e-3, quant_epochs=10),
    "mlp-wide": PipelineConfig(sparsity=0.95, codebook_bits=4, finetune_epochs=100, finetune_lr=3e-3, quant_epochs=10),
    "lenet-300-100": PipelineConfig(sparsity=0.93, codebook_bits=5, finetune_epochs=25, finetune_lr=1e-3, quant_epochs=5),
}
TARGET_RATIO = {"mlp": 18, "mlp-wide": 30, "lenet-300-100": 45}
MAX_DROP_POINTS = 0.5


def run(name: str, config: PipelineConfig):
    gen = run_pipeline(load_zoo(name), config)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def main() -> None:
    torch.set_num_threads(1)  # the same arithmetic on every machine, so the default seed gives the same files
    torch.manual_seed(0)
    print(f"{'model':<14} {'fp32 B':>9} {'.clab B':>8} {'ratio':>7} {'target':>7} {'zlib':>6} "
          f"{'acc fp32':>8} {'acc file':>8} {'drop pt':>7}  verdict  seconds")
    for name, config in CONFIGS.items():
        if name == "lenet-300-100" and not fashion_mnist_available():
            print(f"{name:<14} skipped: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
            continue
        start = time.perf_counter()
        result = run(name, config)
        decoded = load_clab(result.file)
        accuracy = decoded.evaluate().accuracy  # measured again from the bytes, not taken from the pipeline
        zlib_ratio = result.baseline_size_bytes / len(zlib.compress(torch_save_bytes(state_dict_of(decoded.module)), 9))
        drop = (result.baseline_accuracy - accuracy) * 100
        ok = result.compression_ratio >= TARGET_RATIO[name] and drop <= MAX_DROP_POINTS
        print(f"{name:<14} {result.baseline_size_bytes:>9} {result.size_bytes:>8} {result.compression_ratio:>6.1f}x "
              f"{TARGET_RATIO[name]:>6}x {zlib_ratio:>5.1f}x {result.baseline_accuracy:>8.4f} {accuracy:>8.4f} "
              f"{drop:>7.2f}  {'MEETS' if ok else 'MISSES'}   {time.perf_counter() - start:.0f}", flush=True)


if __name__ == "__main__":
    main()
