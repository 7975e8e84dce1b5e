"""The command-line interface, `python -m compression COMMAND`: one module per command, same engine as the app."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from compression.cli import distill, export, info, lm, pipeline, prune, quantize, runs, sweep
from compression.core import InputError, logs
from compression.core.threads import use_threads

logger = logging.getLogger(__name__)

__all__ = ["main"]

# Each module exposes register(subparsers) and sets `func` on its parser.
COMMANDS = [info, export, distill, quantize, prune, pipeline, lm, sweep, runs]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m compression", description="Compression Lab: prune, quantize and distill PyTorch models."
    )
    parser.add_argument("--threads", type=_threads, default=None, metavar="N",
                        help="torch's intra-op threads (default: $COMPRESSION_LAB_TORCH_THREADS, else 1: measured "
                             "fastest on a shared machine, see the README)")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    args = parser.parse_args(argv)
    log = logs.configure()
    try:
        threads = use_threads(args.threads)
        logger.info("%s (%d torch threads)", " ".join(sys.argv[1:] if argv is None else argv), threads)
        return args.func(args) or 0
    except InputError as exc:
        logger.warning("refused: %s", exc)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        logger.warning("interrupted")
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line for the user; the traceback goes to the log
        logger.exception("failed")
        where = f" (traceback in {log})" if log else ""
        print(f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}{where}", file=sys.stderr)
        return 1


def _threads(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"--threads must be a positive whole number, got {text!r}")
    return int(text)
