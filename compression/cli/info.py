"""`info`: a model's facts (params, accuracy, size_bytes, dataset, layers)."""

from __future__ import annotations

import compression.cli.common as common
from compression.models import describe


def register(sub) -> None:
    parser = sub.add_parser("info", help="print a model's facts")
    common.add_model_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    facts = describe(common.resolve_model(args))
    if args.json:
        common.print_json(facts.to_dict())
        return 0
    print(f"{facts.name}  ({facts.source}, dataset {facts.dataset})")
    print(f"  accuracy {facts.accuracy:.4f}  loss {facts.loss:.4f}  on {facts.test_samples} held-out samples")
    print(f"  params {facts.params}  non-zero {facts.nonzero_params}")
    print(f"  size {facts.size_bytes} bytes (torch.save / .onnx)  {facts.safetensors_bytes} bytes (safetensors)")
    for row in facts.layers:
        print(f"    {row.layer:<20} {row.type:<12} {row.shape:<14} {row.params:>8}  sparsity {row.sparsity:.3f}")
    return 0
