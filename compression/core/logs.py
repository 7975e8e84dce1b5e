"""Where failures leave their trace: the engine, the app and the CLI log through Python's standard `logging`
into one file per data folder, while the user still sees one clear line.

The engine only creates loggers (`logging.getLogger(__name__)`) and never configures them: the front ends (the
app, the CLI) call `configure()`, so a program using the engine as a library keeps its own logging.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path

LOG_ENV = "COMPRESSION_LAB_LOG"  # the log file; default: compression-lab.log in the data folder
DATA_ENV = "COMPRESSION_LAB_DATA"  # the data folder (run history, log), default ~/.local/share/compression-lab
LOG_BYTES, LOG_BACKUPS = 5 << 20, 3  # rotate at 5 MiB, keep three old files
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"
LOGGERS = ("compression", "ui", "pages")
_HANDLER_NAME = "compression-lab-file"


def data_dir() -> Path:
    """The folder for the run history and the log ($COMPRESSION_LAB_DATA, else ~/.local/share/compression-lab)."""
    return Path(os.environ.get(DATA_ENV) or Path.home() / ".local" / "share" / "compression-lab")


def log_path() -> Path:
    """The log file ($COMPRESSION_LAB_LOG, else compression-lab.log in the data folder)."""
    return Path(os.environ.get(LOG_ENV) or data_dir() / "compression-lab.log")


def configure(level: int = logging.INFO) -> Path | None:
    """Send the project's loggers to the log file, once per process and file; returns the file (None if the
    folder cannot be written: the app and the CLI still run, without a trace on disk)."""
    path = log_path()
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if any(getattr(h, "name", None) == _HANDLER_NAME and getattr(h, "baseFilename", None) == str(path.resolve())
               for h in logger.handlers):
            continue
        for old in [h for h in logger.handlers if getattr(h, "name", None) == _HANDLER_NAME]:
            logger.removeHandler(old)  # the file moved (another $COMPRESSION_LAB_LOG): follow it
            old.close()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(path, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS,
                                                           encoding="utf-8", delay=True)
        except OSError:
            return None
        handler.name = _HANDLER_NAME
        handler.setFormatter(logging.Formatter(FORMAT))
        logger.addHandler(handler)
        logger.propagate = False  # the file is the trace; the console stays the user's
    return path
