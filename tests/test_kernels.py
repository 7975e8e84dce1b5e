"""Real low-bit kernels run the run's own codes and grids: each grid that maps is checked exactly (scales that are
bfloat16 values, an identity input), and against the fake-quant weights on random inputs; grids that cannot map
say why."""

import pytest
import torch
from torch import nn

from compression.quantization import (INT4_GROUPS, Int4Linear, Int8Embedding, Int8Linear, QParams, QTensor,
                                      QuantConfig, kernel_for, to_kernels)
from compression.quantization.tensors import quantize_tensor

GRIDS = [  # (config, kernel it must run on)
    (QuantConfig(bits=4, scheme="asymmetric", granularity="per-group", group_size=32, fp16_scales=True), "int4pack"),
    (QuantConfig(bits=4, scheme="asymmetric", granularity="per-group", group_size=64), "int4pack"),
    (QuantConfig(bits=4, scheme="asymmetric", granularity="per-group", group_size=128), "int4pack"),
    (QuantConfig(bits=4, scheme="symmetric", granularity="per-group", group_size=64), "int4pack"),
    (QuantConfig(bits=3, scheme="asymmetric", granularity="per-channel"), "int4pack"),
    (QuantConfig(bits=2, scheme="symmetric", granularity="per-tensor"), "int4pack"),
    (QuantConfig(bits=8, scheme="asymmetric", granularity="per-channel"), "int8pack"),
    (QuantConfig(bits=8, scheme="symmetric", granularity="per-channel"), "int8pack"),
    (QuantConfig(bits=6, scheme="asymmetric", granularity="per-tensor"), "int8pack"),
]


def _pow2_grid(qtensor: QTensor) -> QTensor:
    """The same codes on scales that are powers of two (bfloat16 values): the kernel must then be exact."""
    qp = qtensor.qparams
    scale = 2.0 ** torch.round(torch.log2(qp.scale))
    return QTensor(qtensor.codes, QParams(scale, qp.zero_point, qp.quant_min, qp.quant_max, qp.axis, qp.group_size),
                   qtensor.bits)


@pytest.mark.parametrize("config,kernel", GRIDS, ids=lambda v: getattr(v, "label", v) + getattr(v, "scheme", ""))
def test_grid_maps_onto_its_kernel_exactly(config, kernel):
    torch.manual_seed(0)
    qtensor = _pow2_grid(quantize_tensor(torch.randn(48, 256), config.bits, config))
    chosen, _ = kernel_for(qtensor)
    assert chosen == kernel
    module = (Int4Linear if kernel == "int4pack" else Int8Linear).from_qtensor(qtensor)
    # x = I: the kernel's output is its weight, transposed; with bfloat16-exact scales and offsets nothing rounds
    out = module(torch.eye(256)).t()
    assert torch.equal(out, qtensor.dequantize())


@pytest.mark.parametrize("config,kernel", GRIDS, ids=lambda v: getattr(v, "label", v) + getattr(v, "scheme", ""))
def test_kernel_agrees_with_fake_quant(config, kernel):
    torch.manual_seed(1)
    qtensor = quantize_tensor(torch.randn(64, 256), config.bits, config)
    bias = torch.randn(64)
    module = (Int4Linear if kernel == "int4pack" else Int8Linear).from_qtensor(qtensor, bias)
    x = torch.randn(3, 5, 256)
    reference = x @ qtensor.dequantize().t() + bias
    out = module(x)
    assert out.shape == reference.shape and out.dtype == torch.float32
    # bfloat16 activations and output: about 3 significant digits
    assert (out - reference).abs().max() <= 0.01 * reference.abs().max()


@pytest.mark.parametrize("config,reason", [
    (QuantConfig(bits=8, scheme="asymmetric", granularity="per-group", group_size=64), "one scale per group"),
    (QuantConfig(bits=4, scheme="asymmetric", granularity="per-group", group_size=48), "groups of 48"),
])
def test_unmapped_grid_says_why(config, reason):
    qtensor = quantize_tensor(torch.randn(32, 96), config.bits, config)
    chosen, why = kernel_for(qtensor)
    assert chosen is None and reason in why


def test_int4_needs_rows_in_sixteens():
    config = QuantConfig(bits=4, scheme="asymmetric", granularity="per-group", group_size=32)
    chosen, why = kernel_for(quantize_tensor(torch.randn(40, 64), 4, config), "int4pack")
    assert chosen is None and "sixteens" in why
    assert INT4_GROUPS == (32, 64, 128, 256)


def test_int8_embedding_reads_the_head_codes():
    config = QuantConfig(bits=8, scheme="symmetric", granularity="per-channel")
    qtensor = quantize_tensor(torch.randn(20, 32), 8, config)
    head = Int8Linear.from_qtensor(qtensor)
    embedding = Int8Embedding.from_head(head)
    ids = torch.tensor([[0, 5, 19]])
    expected = qtensor.dequantize()[ids]
    assert torch.allclose(embedding(ids), expected, rtol=2 ** -8)
    assert embedding.codes is head.codes


def test_to_kernels_swaps_a_copy_and_keeps_unmapped_layers_float():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 48)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mapped = QuantConfig(bits=4, scheme="asymmetric", granularity="per-group", group_size=32)
    unmapped = QuantConfig(bits=8, scheme="asymmetric", granularity="per-group", group_size=16)
    qtensors = {"0.weight": quantize_tensor(model[0].weight.detach(), 4, mapped),
                "2.weight": quantize_tensor(model[2].weight.detach(), 8, unmapped)}
    swapped = to_kernels(model, qtensors)
    assert isinstance(swapped.model[0], Int4Linear) and isinstance(swapped.model[2], nn.Linear)
    assert swapped.kernels() == {"int4pack": 1, "float": 1}
    assert "kept float" in swapped.notes()[0]
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the input model is unchanged
    x = torch.randn(4, 64)
    with torch.no_grad():
        reference = nn.functional.linear(torch.relu(x @ qtensors["0.weight"].dequantize().t() + model[0].bias),
                                         model[2].weight, model[2].bias)
        assert torch.allclose(swapped.model(x), reference, atol=0.02 * float(reference.abs().max()))
