"""The run history: the store (a SQLite file, or PostgreSQL for several servers), its migration, comparisons
(Pareto), the HTML report and CSV export."""

from compression.history.compare import (
    LATENCY_TOLERANCE,
    latency_groups,
    latency_method_label,
    model_from_run_file,
    pareto_front,
)
from compression.history.csv_export import write_csv
from compression.history.lm_cost import cost_table as lm_cost_table
from compression.history.lm_cost import measured_runs as measured_lm_runs
from compression.history.database import DB_URL_ENV, default_path
from compression.history.jobs import Finish, recorded_job
from compression.history.migration import Migration, migrate
from compression.history.report import pipeline_report, runs_report
from compression.history.store import HistoryError, Run, RunStore, run_from_result, runs_table
from compression.history.views import (
    CLASSIFIER_COLUMNS,
    LM_COLUMNS,
    is_language_model,
    lm_group,
    run_names,
    split_families,
    summarise,
    table_of,
)

__all__ = [
    "DB_URL_ENV",
    "default_path",
    "migrate",
    "Migration",
    "lm_cost_table",
    "measured_lm_runs",
    "CLASSIFIER_COLUMNS",
    "LM_COLUMNS",
    "is_language_model",
    "lm_group",
    "run_names",
    "split_families",
    "summarise",
    "table_of",
    "LATENCY_TOLERANCE",
    "Finish",
    "HistoryError",
    "latency_groups",
    "latency_method_label",
    "model_from_run_file",
    "pareto_front",
    "pipeline_report",
    "recorded_job",
    "Run",
    "run_from_result",
    "runs_report",
    "runs_table",
    "RunStore",
    "write_csv",
]
