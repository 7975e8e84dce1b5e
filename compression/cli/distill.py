"""`distill`: train a small MLP student from a teacher, paired with a scratch twin, and print what was measured."""

from __future__ import annotations

import argparse
import sys

import torch

import compression.cli.common as common
from compression.core import Drive
from compression.distillation import DistillConfig, distill, history_run, parse_hidden, student_layout
from compression.models import ZOO


def register(sub) -> None:
    parser = sub.add_parser("distill", help="distill a teacher into a small MLP student (with a scratch baseline)")
    parser.add_argument("--teacher", required=True,
                        help=f"zoo name ({', '.join(ZOO)}), or a .safetensors/.pt file with --arch")
    parser.add_argument("--arch", help="zoo architecture of a teacher given as a weights file")
    parser.add_argument("--student-hidden", required=True, metavar="H",
                        help="hidden units of the student, e.g. 32 (the 64-32-10 student on digits) or 64,32")
    parser.add_argument("--alpha", type=float, required=True, help="weight of the true-label term, in [0, 1]")
    parser.add_argument("--temperature", type=float, required=True, help="softmax temperature T > 0")
    parser.add_argument("--labeled-fraction", type=float, default=1.0,
                        help="fraction of training images whose labels the students see (default 1)")
    parser.add_argument("--epochs", type=int, default=DistillConfig.epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hint-layer", help="teacher layer for feature (hint) distillation, e.g. fc1")
    parser.add_argument("--no-record", action="store_true", help="do not record the run in the history")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    # The student is tiny: one thread is fastest. With two, the main thread's spinning OpenMP worker made a
    # 10-epoch run 7-20x slower whenever other work loaded this 2-core machine (4.5-13.7 s against 0.7 s).
    torch.set_num_threads(1)

    config = DistillConfig(alpha=args.alpha, temperature=args.temperature,
                           student_hidden=parse_hidden(args.student_hidden), labeled_fraction=args.labeled_fraction,
                           epochs=args.epochs, seed=args.seed, hint_layer=args.hint_layer)
    teacher = common.resolve_model(argparse.Namespace(model=args.teacher, arch=args.arch, data=None, arch_factory=None,
                                               weights=None))
    run_, rows = Drive(distill(teacher, config)), []
    for step in run_:
        rows.append(step.to_row())
        if step.student.test_accuracy is not None and not args.json:
            print(f"  epoch {step.student.epoch:5.1f}  student {step.student.test_accuracy:.3f}  "
                  f"scratch {step.scratch.test_accuracy:.3f}", file=sys.stderr)
    result = run_.result
    payload = result.to_dict()
    payload["run_id"] = common.record_run(args, history_run(result, rows))
    if args.json:
        common.print_json(payload)
        return 0
    print(f"teacher {result.teacher_name}: accuracy {result.teacher_accuracy:.4f}, {result.teacher_params:,} params, "
          f"{result.teacher_size_bytes:,} bytes, {result.teacher_latency_ms:.3f} ms")
    print(f"student {student_layout(config, teacher.dataset)}: accuracy {result.student_accuracy:.4f}, "
          f"{result.student_params:,} params, {result.student_size_bytes:,} bytes, "
          f"{result.student_latency_ms:.3f} ms, agreement with teacher {result.agreement:.4f}")
    print(f"scratch (same student, labels only): accuracy {result.scratch_accuracy:.4f}")
    print(f"gain from distillation: {100 * result.gain:+.1f} points "
          f"({result.labeled_images} of {result.train_images} training labels used)")
    if "run_id" in payload:
        print(f"recorded in the run history as {payload['run_id']}")
    return 0
