"""`runs`: the experiment history (list, export as CSV, delete, migrate to another database)."""

from __future__ import annotations

import os
import sys

import compression.cli.common as common
from compression.core import InputError
from compression.history import DB_URL_ENV, RunStore, default_path, migrate, runs_table, write_csv


def register(sub) -> None:
    parser = sub.add_parser("runs", help="the experiment history")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="list recorded runs, newest first")
    listing.add_argument("--kind", help="only runs of this kind (prune, quantize, distill, pipeline)")
    listing.add_argument("--model", help="only runs of this model")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.add_argument("--csv", action="store_true", help="print CSV")
    listing.set_defaults(func=run_list)
    delete = actions.add_parser("delete", help="delete runs by id")
    delete.add_argument("ids", nargs="+")
    delete.set_defaults(func=run_delete)
    move = actions.add_parser("migrate", help="copy every run of one history into another: today's SQLite file into "
                                             "the PostgreSQL database several servers share")
    move.add_argument("--from", dest="source", help="the history to copy: a SQLite file or a database URL "
                                                    "(default: runs.sqlite in the data folder)")
    move.add_argument("--to", dest="target", help=f"where to: a database URL or a SQLite file (default: ${DB_URL_ENV})")
    move.add_argument("--json", action="store_true", help="print JSON")
    move.set_defaults(func=run_migrate)


def run_list(args) -> int:
    rows = runs_table(RunStore().runs(kind=args.kind, model=args.model))
    if args.json:
        common.print_json({"runs": rows})
    elif args.csv:
        write_csv(rows, sys.stdout)
    else:
        for row in rows:
            print(f"{row['id']}  {row['created']}  {row['kind']:<9} {row['model']:<21} {row.get('label') or '':<24} "
                  f"{row.get('status') or '':<11} {_measure(row)}  size_bytes {row.get('size_bytes')}")
    return 0


def _measure(row: dict) -> str:
    """A run's own measure: a language model's perplexity (lower is better), a classifier's accuracy."""
    if row.get("perplexity") is not None:
        return f"perplexity {row['perplexity']:.2f}"
    return f"accuracy {row['accuracy']:.4f}" if row.get("accuracy") is not None else "not measured"


def run_delete(args) -> int:
    print(f"deleted {RunStore().delete(args.ids)} run(s)")
    return 0


def run_migrate(args) -> int:
    target = args.target or os.environ.get(DB_URL_ENV, "").strip()
    if not target:
        raise InputError(f"say where to: --to postgresql://user@host:port/database, or set ${DB_URL_ENV}")
    done = migrate(args.source or default_path(), target)
    if args.json:
        common.print_json({"copied": done.copied, "present": done.present, "source": done.source,
                           "target": done.target})
    else:
        print(f"copied {done.copied} run(s) from {done.source} to {done.target}; {done.present} were there already")
    return 0
