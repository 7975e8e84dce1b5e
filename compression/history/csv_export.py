"""Runs as CSV for a spreadsheet: one header row in words with the unit in brackets, plain numbers at a sensible
precision, empty cells for missing values.

One header row, because a spreadsheet reads the first row as the column names and every row under it as data: a
second, machine-readable header row would be sorted, filtered and summed with the runs. Scripts that want the
recorded keys and full-precision values have `python -m compression runs list --json`.
"""

from __future__ import annotations

import csv
import math

from compression.core import readable
from compression.history.views import cell


def header(key: str) -> str:
    """A column's name in words with its unit: 'accuracy (%)', 'file size (bytes)', 'latency (ms)'."""
    words = readable.name(key)
    if key in readable.POINTS:
        return f"{words} (points)"
    if readable.is_fraction(key):
        return f"{words} (%)"
    if key.endswith("_bytes"):
        return f"{words} (bytes)"
    if key.endswith("_ms"):
        return f"{words} (ms)"
    if key in readable.SECONDS:
        return f"{words} (s)"
    return words


def number(key: str, v: object) -> object:
    """A cell as a spreadsheet number: percent and points with two decimals, whole bytes, four significant digits
    for other measurements (not the 17 digits of a float's repr); words for kinds; blank for missing."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return cell(key, v)
    if key in readable.POINTS or readable.is_fraction(key):
        return round(100 * v, 2)
    if key.endswith("_bytes") or isinstance(v, int) or float(v).is_integer():
        return int(v)
    if key in readable.SECONDS:
        return round(v, 1)
    return float(f"{v:.4g}")


def write_csv(rows: list[dict], stream) -> None:
    """Rows with possibly different keys, as one CSV with the union of columns, headed in words."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    writer = csv.writer(stream)
    writer.writerow([header(c) for c in columns])
    writer.writerows([number(c, row.get(c)) for c in columns] for row in rows)
