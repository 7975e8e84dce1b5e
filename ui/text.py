"""Sentences the pages say about measured results: the words live here, the numbers come from the engine."""

from __future__ import annotations

from compression.quantization import Int8Measure

ONNX_TECHNIQUES = ("unstructured magnitude pruning (threshold / sparsity)", "N:M pruning",
                   "weight fake-quantization (PTQ)", "measured accuracy, size and latency")
ONNX_NOT_SUPPORTED = ("structured pruning (needs the graph rewritten)", "fine-tuning, QAT and distillation "
                      "(need gradients: use a zoo architecture or your own module:function)")


def int8_verdict(m: Int8Measure, has_conv: bool) -> str:
    """One plain sentence: did int8 win here, and why."""
    size = f"The int8 file is {m.size_ratio:.1f}x smaller."
    if m.speedup >= 1.1:
        return (f"int8 is {m.speedup:.1f}x faster than fp32 at batch {m.batch_size}: its layers are "
                f"large enough for int8 matrix kernels to win. {size}")
    conv = "; dynamic mode also leaves Conv layers in fp32" if m.mode == "dynamic" and has_conv else ""
    why = ("the layers are small, so quantizing and dequantizing activations costs about as much as the int8 "
           f"matrix multiply saves{conv}")
    where = "int8 wins on large Linear layers (e.g. 1024-4096-4096-10 at batch 256)."
    slower = "SLOWER" if m.speedup < 0.9 else "no faster"
    return (f"int8 is {slower} here ({m.latency_ms:.3f} ms vs {m.baseline_latency_ms:.3f} ms fp32, "
            f"{m.speedup:.2f}x): {why}. {where} {size}")
