"""Runs as CSV: one row per run, empty cells for missing values, integers kept as integers."""

from __future__ import annotations

import csv


def write_csv(rows: list[dict], stream) -> None:
    """Rows with possibly different keys, as one CSV with the union of columns."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    writer = csv.DictWriter(stream, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
