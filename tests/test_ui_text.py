"""The sentences pages say about measurements: plain, and true to the model at hand."""

from compression.quantization import Int8Measure
from ui.text import int8_verdict


def _measure(latency_ms: float, baseline_ms: float, batch: int = 256, mode: str = "dynamic") -> Int8Measure:
    return Int8Measure("b", mode, batch, latency_ms=latency_ms, baseline_latency_ms=baseline_ms, size_bytes=10,
                       baseline_size_bytes=30)


def test_int8_verdict_says_plainly_when_int8_is_slower_or_faster():
    slow = int8_verdict(_measure(0.04, 0.02, batch=1), has_conv=False)
    assert "SLOWER" in slow and "3.0x smaller" in slow
    assert "4.5x faster" in int8_verdict(_measure(10.0, 45.0), has_conv=False)
    assert "no faster" in int8_verdict(_measure(2.0, 2.05), has_conv=False)


def test_int8_verdict_mentions_conv_layers_only_when_the_model_has_them():
    assert "Conv layers in fp32" in int8_verdict(_measure(2.0, 2.05), has_conv=True)
    assert "Conv" not in int8_verdict(_measure(2.0, 2.05), has_conv=False)
    assert "Conv" not in int8_verdict(_measure(2.0, 2.05, mode="static"), has_conv=True)
