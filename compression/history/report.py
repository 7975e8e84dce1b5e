"""What a user hands over: a standalone HTML report, dense safetensors, and ONNX of what ONNX can express."""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
import plotly.io as pio

from compression.core import readable
from compression.plots.compare import stage_bars, stage_label

# The settings each pipeline step reads: the report lists only those of the steps that ran.
STEP_SETTINGS = {"prune": (("sparsity", "sparsity", "percent"), ("finetune_epochs", "fine-tune epochs", ""),
                           ("finetune_lr", "learning rate", "")),
                 "distill": (("student_hidden", "student hidden units", ""), ("alpha", "α (weight of labels)", ""),
                             ("temperature", "temperature T", ""), ("distill_epochs", "distill epochs", "")),
                 "quantize": (("codebook_bits", "bits per shared weight", ""),
                              ("quant_epochs", "centroid fine-tune epochs", "")),
                 "encode": (("index_bits", "relative index bits", ""),)}


def html_report(title: str, summary: Mapping[str, str], rows: Sequence[Mapping[str, object]],
                figures: Sequence[go.Figure], notes: str = "", rows_title: str = "Runs") -> str:
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
        parts += [f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                  for k, v in summary.items()]
        parts.append("</table>")
    for i, fig in enumerate(figures):
        parts.append(pio.to_html(fig, full_html=False, include_plotlyjs=(i == 0)))
    if rows:
        columns = list(dict.fromkeys(k for row in rows for k in row))
        parts.append(f"<h2>{html.escape(rows_title)}</h2><table><tr>" +
                     "".join(f"<th>{html.escape(readable.name(c))}</th>" for c in columns) + "</tr>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{html.escape(readable.value(c, row.get(c)))}</td>" for c in columns)
                         + "</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def settings_that_ran(config: Mapping[str, object]) -> dict[str, str]:
    """The pipeline's settings as words, only for the steps that ran."""
    shown = {"steps": " → ".join(config.get("steps", ()))}
    for step in config.get("steps", ()):
        for key, label, kind in STEP_SETTINGS.get(step, ()):
            v = config.get(key)
            if isinstance(v, (list, tuple)):
                v = "-".join(str(x) for x in v)
            shown[f"{step}: {label}"] = readable.percent(v, 0) if kind == "percent" else f"{v:g}" \
                if isinstance(v, float) else str(v)
    return shown


def pipeline_report(result) -> str:
    """The HTML report of one pipeline run (a compression.pipeline.run.PipelineResult)."""
    names = ["start: fp32 file"] + [stage_label(s.name) for s in result.stages]
    figure = stage_bars(names, [result.baseline_size_bytes] + [s.size_bytes for s in result.stages],
                        [result.baseline_accuracy] + [s.accuracy for s in result.stages])
    summary = {"model": result.model_name,
               "accuracy (decoded file)": readable.percent(result.accuracy, 2),
               "accuracy before (fp32)": readable.percent(result.baseline_accuracy, 2),
               "file size": readable.size(result.size_bytes),
               "file size before (fp32 torch.save)": readable.size(result.baseline_size_bytes),
               "compression ratio": f"{result.compression_ratio:.1f}× smaller",
               "latency (batch 1)": readable.ms(result.latency_ms),
               "latency before (fp32, batch 1)": readable.ms(result.baseline_latency_ms),
               **settings_that_ran(result.config.to_dict())}
    rows = [{"step": s.name, "accuracy": s.accuracy, "size_bytes": s.size_bytes, "params": s.params,
             "nonzero_params": s.nonzero_params, "seconds": s.seconds} for s in result.stages]
    return html_report(f"Compression report: {result.model_name}", summary, rows, [figure], rows_title="Steps")


def runs_report(rows: list[dict], figures: list[go.Figure]) -> str:
    """The HTML report of a set of recorded runs (the Compare page's view)."""
    best = max((r for r in rows if isinstance(r.get("accuracy"), (int, float))), key=lambda r: r["accuracy"],
               default=None)
    summary = {"runs": str(len(rows))}
    if best is not None:
        summary.update({"most accurate run": f"{best.get('model', '')} · {best.get('label', best['id'])}",
                        "its accuracy": readable.percent(best["accuracy"], 2),
                        "its file size": readable.value("size_bytes", best.get("size_bytes")) or "not recorded"})
    return html_report("Compression Lab: run comparison", summary, rows, figures)
