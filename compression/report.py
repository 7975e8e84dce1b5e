"""What a user hands over: a standalone HTML report, dense safetensors, and ONNX of what ONNX can express."""

from __future__ import annotations

import html
import io
import time
import warnings
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
import plotly.io as pio
import torch

from .errors import InputError
from .loading import LoadedModel
from .metrics import safetensors_bytes, state_dict_of


def html_report(title: str, summary: Mapping[str, object], rows: Sequence[Mapping[str, object]],
                figures: Sequence[go.Figure], notes: str = "") -> str:
    """One self-contained HTML file: plotly.js inlined once, so the report reads offline."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:4px 8px;"
             "text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}</style>",
             "</head><body>", f"<h1>{html.escape(title)}</h1>",
             f"<p>Generated {time.strftime('%Y-%m-%d %H:%M:%S')} by Compression Lab. Every accuracy is measured on "
             "held-out data, every size is the byte count of a real file, every latency a measured median.</p>"]
    if notes:
        parts.append(f"<p>{html.escape(notes)}</p>")
    if summary:
        parts.append("<h2>Summary</h2><table>")
        parts += [f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
                  for k, v in summary.items()]
        parts.append("</table>")
    for i, fig in enumerate(figures):
        parts.append(pio.to_html(fig, full_html=False, include_plotlyjs=(i == 0)))
    if rows:
        columns = list(dict.fromkeys(k for row in rows for k in row))
        parts.append("<h2>Runs</h2><table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{html.escape(_fmt(row.get(c)))}</td>" for c in columns) + "</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    return "" if value is None else str(value)


def dense_safetensors(model: LoadedModel) -> bytes:
    """The dense-equivalent weights (zeros and shared values written out as fp32) under export's names."""
    if model.module is None:
        raise InputError("an ONNX model's weights are exported from the Model page")
    return safetensors_bytes(state_dict_of(model.module))


def onnx_bytes(model: LoadedModel) -> bytes:
    """The model as ONNX (dense fp32: ONNX has no portable sparse or k-means weight format)."""
    if model.module is None:
        raise InputError("this model is already ONNX")
    buffer = io.BytesIO()
    example = model.dataset.x_test[:1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter is deprecated but needs no extra package
        torch.onnx.export(model.module, (example,), buffer, dynamo=False, input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
    return buffer.getvalue()
