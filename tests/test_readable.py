"""The one formatting module: what a user reads, written one way."""

from compression.core import readable


def test_names_are_words_not_snake_case():
    for key in ("size_bytes", "baseline_latency_ms", "nonzero_params", "some_new_metric_ms"):
        assert "_" not in readable.name(key)


def test_values_by_unit():
    assert readable.value("accuracy", 0.975) == "97.50%"
    assert readable.value("baseline_accuracy", 0.5) == "50.00%"
    assert readable.value("size_bytes", 2048) == "2.0 KiB"
    assert readable.value("latency_ms", 0.05123) == "0.0512 ms"
    assert readable.value("latency_ms", 31.94) == "31.9 ms"
    assert readable.value("params", 26506) == "26,506"
    assert readable.value("teacher_params", 38282.0) == "38,282"
    assert readable.value("accuracy", None) == ""


def test_one_image_says_the_resolution():
    assert "0.28 points" in readable.one_image(360)
