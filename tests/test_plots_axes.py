"""Shared axis helpers: size and log ticks that read in order, in units people use, never too many or none."""

import pytest

from compression.core import readable
from compression.plots.axes import MAX_TICKS, log_axis, size_axis


@pytest.mark.parametrize(("values", "labels"), [
    ([1000], ["500 B", "1 KiB", "2 KiB"]),
    ([1024], ["500 B", "1 KiB", "2 KiB"]),
    ([300, 40_000], ["200 B", "500 B", "1 KiB", "2 KiB", "5 KiB", "10 KiB", "20 KiB", "50 KiB"]),
    ([90_000, 1.2e6], ["50 KiB", "100 KiB", "200 KiB", "500 KiB", "1 MiB", "2 MiB"]),
    ([1e9], ["500 MiB", "1 GiB", "2 GiB"]),
])
def test_size_ticks_are_1_2_5_in_the_unit_that_reads(values, labels):
    axis = size_axis(values)
    assert axis["type"] == "log" and axis["ticktext"] == labels
    assert axis["tickvals"] == sorted(axis["tickvals"])
    assert axis["tickvals"][0] <= min(values) and axis["tickvals"][-1] >= max(values)  # the data sits inside


@pytest.mark.parametrize(("values", "labels"), [
    ([100, 200], ["100 B", "120 B", "140 B", "160 B", "180 B", "200 B"]),
    ([5000, 9000], ["5 KiB", "6 KiB", "7 KiB", "8 KiB"]),
    ([95 * 2**20, 174 * 2**20], ["100 MiB", "120 MiB", "140 MiB", "160 MiB"]),  # a single 100 MiB tick before
])
def test_a_narrow_range_is_ticked_in_even_steps_of_its_unit_and_every_tick_shows(values, labels):
    axis = size_axis(values)
    assert axis["ticktext"] == labels
    low, high = (10 ** v for v in axis["range"])  # fitted to the data: plotly's autorange hid all but one tick
    assert low <= min(values) and max(values) <= high and all(low <= v <= high for v in axis["tickvals"])


def test_a_wide_range_keeps_only_the_round_ticks():
    axis = size_axis([300, 5e8])
    assert len(axis["ticktext"]) <= MAX_TICKS
    assert axis["ticktext"] == ["100 B", "1 KiB", "10 KiB", "100 KiB", "1 MiB", "10 MiB", "100 MiB", "1 GiB"]
    latency = log_axis([0.01, 900], readable.ms)
    assert len(latency["tickvals"]) <= MAX_TICKS and latency["tickvals"] == sorted(latency["tickvals"])
    assert latency["tickvals"][0] <= 0.01 and latency["tickvals"][-1] >= 900


@pytest.mark.parametrize("values", [[], [0.0], [float("nan")], [0.3], [5e16]])
def test_sizes_no_unit_fits_leave_plotly_its_own_log_ticks(values):
    assert size_axis(values) == {"type": "log"}


def test_log_ticks_are_1_2_5_labelled_by_the_given_format():
    axis = log_axis([0.015, 0.34], readable.ms)
    assert axis["tickvals"] == pytest.approx([0.01, 0.02, 0.05, 0.1, 0.2, 0.5])
    assert axis["ticktext"] == [readable.ms(v) for v in axis["tickvals"]]
    narrow = log_axis([0.015, 0.034], readable.ms)  # one 1-2-5 tick inside: evenly stepped ones instead
    assert narrow["tickvals"] == pytest.approx([0.015, 0.02, 0.025, 0.03])
