"""What a user hands over: a standalone HTML report of one pipeline run or of a set of recorded runs."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import plotly.graph_objects as go
import plotly.io as pio

from compression.core import readable
from compression.history import lm_cost, views
from compression.models.architectures import ARCHITECTURES
from compression.plots.compare import stage_bars, stage_label

# The settings each pipeline step reads: the report lists only those of the steps that ran.
STEP_SETTINGS = {"prune": (("sparsity", "sparsity", "percent"), ("finetune_epochs", "fine-tune epochs", ""),
                           ("finetune_lr", "learning rate", "")),
                 "distill": (("student_hidden", "student hidden units", ""), ("alpha", "α (weight of labels)", ""),
                             ("temperature", "temperature T", ""), ("distill_epochs", "distill epochs", "")),
                 "quantize": (("codebook_bits", "bits per shared weight", ""),
                              ("quant_epochs", "centroid fine-tune epochs", "")),
                 "encode": (("index_bits", "relative index bits", ""),)}
# Tables wrap their headers and scroll inside their own box, so the page never grows wider than the window.
# Numbers align right, words left.
_STYLE = ("<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px}"
          ".table{overflow-x:auto;max-width:100%}table{border-collapse:collapse;font-size:13px}"
          "td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}"
          "td.n{text-align:right;white-space:nowrap}th{background:#f4f4f4;font-weight:600}"
          "dt{font-weight:600;margin-top:.4rem}dd{margin-left:1rem}</style>")
_NUMBER = re.compile(r"[-+<]?\s?[\d.,]+(\s?(%|×|points|s|ms|B|KiB|MiB|GiB))?")


@dataclass(frozen=True)
class Section:
    """One table of the report: a title, headers in words, cells in words, and a note under it."""

    title: str
    headers: Sequence[str]
    cells: Sequence[Sequence[str]]
    note: str = ""


def html_report(title: str, summary: Mapping[str, str], sections: Sequence[Section], figures: Sequence[go.Figure],
                notes: Sequence[str] = (), glossary: Mapping[str, str] | None = None) -> str:
    """One self-contained HTML file: plotly.js inlined once, so the report reads offline."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><meta name='viewport' "
             f"content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>", _STYLE,
             "</head><body>", f"<h1>{html.escape(title)}</h1>",
             f"<p>Generated {time.strftime('%Y-%m-%d %H:%M:%S')} by Compression Lab. Every accuracy and perplexity is "
             "measured on held-out data, every size is the byte count of a real file, every latency a measured "
             "median.</p>"]
    if summary:
        parts.append("<h2>Summary</h2>" + _table(["", ""], [[k, v] for k, v in summary.items()], header=False))
    parts += [f"<p>{html.escape(note)}</p>" for note in notes if note]
    for i, fig in enumerate(figures):
        parts.append(pio.to_html(fig, full_html=False, include_plotlyjs=(i == 0), default_width="100%"))
    for section in sections:
        if section.cells:
            parts.append(f"<h2>{html.escape(section.title)}</h2>" + _table(section.headers, section.cells))
            if section.note:
                parts.append(f"<p>{html.escape(section.note)}</p>")
    if glossary:
        parts.append("<h2>What the words mean</h2><dl>" + "".join(
            f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in glossary.items()) + "</dl>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _table(headers: Sequence[str], cells: Sequence[Sequence[str]], header: bool = True) -> str:
    """A table in its own horizontally scrolling box; without `header` (the summary), the first column heads each
    row and the values read left to right like text."""
    def cell(j: int, c: object) -> str:
        text = str(c)
        if not header and j == 0:
            return f"<th>{html.escape(text)}</th>"
        return f"<td{' class=n' if header and _NUMBER.fullmatch(text) else ''}>{html.escape(text)}</td>"

    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(cell(j, c) for j, c in enumerate(row)) + "</tr>" for row in cells)
    return f"<div class='table'><table>{head}{body}</table></div>"


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


def model_description(name: str, arch: str | None) -> str:
    """What the model is, in the zoo's words: a zoo model by name, or weights uploaded for a zoo architecture."""
    if name in ARCHITECTURES:
        return f"{name}: {ARCHITECTURES[name].description}"
    if arch in ARCHITECTURES:
        return f"{name}: weights for the {arch} architecture ({ARCHITECTURES[arch].description})"
    return name


def pipeline_report(result) -> str:
    """The HTML report of one pipeline run (a compression.pipeline.run.PipelineResult)."""
    names = ["start: fp32 file"] + [stage_label(s.name) for s in result.stages]
    figure = stage_bars(names, [result.baseline_size_bytes] + [s.size_bytes for s in result.stages],
                        [result.baseline_accuracy] + [s.accuracy for s in result.stages])
    data = result.model.dataset
    test_images = len(data.y_test)
    change = result.accuracy - result.baseline_accuracy
    summary = {"model": model_description(result.model_name, result.model.arch),
               "tested on": f"{data.name}: {test_images:,} held-out images, never used for training",
               "accuracy (decoded file)": readable.percent(result.accuracy, 2),
               "accuracy before (fp32)": readable.percent(result.baseline_accuracy, 2),
               "change": f"{readable.points(change, 2, 'points')} ({round(change * test_images):+d} test images)",
               "file size": readable.size(result.size_bytes),
               "file size before (fp32 torch.save)": readable.size(result.baseline_size_bytes),
               "compression ratio": f"{result.compression_ratio:.1f}× smaller",
               "latency (batch 1)": readable.ms(result.latency_ms),
               "latency before (fp32, batch 1)": readable.ms(result.baseline_latency_ms),
               **settings_that_ran(result.config.to_dict())}
    steps = Section("Steps", ["step", "accuracy", "file size", "parameters", "non-zero parameters", "time"],
                    [[stage_label(s.name), readable.percent(s.accuracy, 2), readable.size(s.size_bytes),
                      readable.count(s.params), readable.count(s.nonzero_params), readable.seconds(s.seconds)]
                     for s in result.stages],
                    "Pruning and weight sharing leave an fp32 file of the same size (zeros and shared values still "
                    "cost 4 bytes each); only the encode step writes the smaller file.")
    notes = [readable.one_image(test_images)]
    return html_report(f"Compression report: {result.model_name}", summary, [steps], [figure], notes,
                       views.glossary(["accuracy", ".clab file", "latency", *summary]))


def runs_report(rows: Sequence[Mapping], figures: Sequence[go.Figure], notes: Sequence[str] = ()) -> str:
    """The HTML report of a set of recorded runs (the Compare page's view): classifiers and language models in
    tables of their own, each with the columns its runs fill."""
    classifiers, lms = views.split_families(rows)
    report_columns = [c for c in views.CLASSIFIER_COLUMNS if c != "id"], [c for c in views.LM_COLUMNS if c != "id"]
    sections = [Section("Classifier runs", *views.table_of(classifiers, report_columns[0]),
                        "Accuracy on held-out test images: higher is better."),
                Section("Language-model runs", *views.table_of(lms, report_columns[1]),
                        "Perplexity on the held-out last tenth of the evaluation text: lower is better. Compare "
                        "perplexities only between runs of one model on the same evaluation text and tokens.")]
    sections.append(Section(*lm_cost.cost_table(lms)))  # measured speed and memory of the LM runs that have them
    summary = views.summarise(rows)
    said = [*summary, *summary.values(), *(h for sec in sections for h in sec.headers),
            *(c for sec in sections for row in sec.cells for c in row)]
    return html_report("Compression Lab: run comparison", summary, sections, figures, notes, views.glossary(said))
