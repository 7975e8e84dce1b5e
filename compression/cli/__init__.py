"""The command-line interface, `python -m compression COMMAND`: one module per command, same engine as the app."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from compression.cli import distill, export, info, lm, pipeline, prune, quantize, runs
from compression.core import InputError

__all__ = ["main"]

# Each module exposes register(subparsers) and sets `func` on its parser.
COMMANDS = [info, export, distill, quantize, prune, pipeline, lm, runs]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m compression", description="Compression Lab: prune, quantize and distill PyTorch models."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line for the user instead of a traceback
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
