import torch
from safetensors.torch import save_file

from compression.metrics import (
    count_nonzero,
    histogram,
    layer_table,
    measure_latency,
    safetensors_bytes,
    state_dict_of,
    torch_save_bytes,
)
from compression.models.architectures import MLP


def test_layer_table_counts_parameters_and_zeros():
    model = MLP(64, (10,), 3)
    with torch.no_grad():
        model.fc1.weight[:, :32] = 0
    rows = {r.layer: r for r in layer_table(model)}
    assert rows["fc1"].params == 64 * 10 + 10 and rows["fc1"].nonzero == 32 * 10 + 10
    assert abs(rows["fc1"].sparsity - 320 / 650) < 1e-9
    assert rows["fc2"].shape == "3 x 10"
    assert count_nonzero(model) == sum(r.nonzero for r in rows.values())


def test_sizes_are_the_bytes_of_real_files(tmp_path):
    state = state_dict_of(MLP(64, (100,), 10))
    torch.save(state, tmp_path / "model.pt")
    save_file(state, str(tmp_path / "m.safetensors"))
    assert len(torch_save_bytes(state)) == (tmp_path / "model.pt").stat().st_size
    assert len(safetensors_bytes(state)) == (tmp_path / "m.safetensors").stat().st_size


def test_latency_is_measured_with_a_median():
    latency = measure_latency(MLP(64, (100,), 10), torch.zeros(8, 1, 8, 8), warmup=2, repeats=11)
    assert 0 < latency.p10_ms <= latency.median_ms <= latency.p90_ms and latency.batch_size == 8


def test_histogram_keeps_every_value_in_100_bins():
    values = torch.randn(10_000)
    hist = histogram(values)
    assert len(hist.counts) == 100 and len(hist.edges) == 101 and sum(hist.counts) == 10_000
    constant = histogram(torch.zeros(50))
    assert sum(constant.counts) == 50 and constant.edges[0] < 0 < constant.edges[-1]
