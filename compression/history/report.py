"""What a user hands over: a standalone HTML report, dense safetensors, and ONNX of what ONNX can express."""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
import plotly.io as pio

from compression.plots.compare import stage_bars, stage_label


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


def pipeline_report(result) -> str:
    """The HTML report of one pipeline run (a compression.pipeline.run.PipelineResult)."""
    names = ["start: fp32 file"] + [stage_label(s.name) for s in result.stages]
    figure = stage_bars(names, [result.baseline_size_bytes] + [s.size_bytes for s in result.stages],
                        [result.baseline_accuracy] + [s.accuracy for s in result.stages])
    summary = {"model": result.model_name, "steps": " → ".join(result.config.steps),
               "accuracy (decoded file)": result.accuracy, "baseline accuracy": result.baseline_accuracy,
               "size_bytes": result.size_bytes, "baseline_size_bytes": result.baseline_size_bytes,
               "compression ratio": result.compression_ratio, "latency_ms": result.latency_ms,
               "baseline latency_ms": result.baseline_latency_ms, "config": str(result.config.to_dict())}
    rows = [{"step": s.name, "accuracy": s.accuracy, "size_bytes": s.size_bytes, "params": s.params,
             "nonzero_params": s.nonzero_params, "seconds": s.seconds} for s in result.stages]
    return html_report(f"Compression report: {result.model_name}", summary, rows, [figure])


def runs_report(rows: list[dict], figures: list[go.Figure]) -> str:
    """The HTML report of a set of recorded runs (the Compare page's view)."""
    best = max((r for r in rows if isinstance(r.get("accuracy"), (int, float))), key=lambda r: r["accuracy"],
               default=None)
    summary = {"runs": len(rows)}
    if best is not None:
        summary.update({"most accurate run": best["id"], "its accuracy": best["accuracy"],
                        "its size_bytes": best.get("size_bytes")})
    return html_report("Compression Lab: run comparison", summary, rows, figures)
