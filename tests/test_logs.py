"""Failures leave a trace: a failed job or CLI command logs its traceback to the log file; the user sees one line."""

import logging

import pytest

import compression.cli.info as info_command
from compression.cli import main
from compression.core import Job, JobPool, logs


@pytest.fixture
def log_file(tmp_path, monkeypatch):
    path = tmp_path / "lab.log"
    monkeypatch.setenv(logs.LOG_ENV, str(path))
    logs.configure()
    yield path
    for name in logs.LOGGERS:  # the next test's configure() opens its own file
        for handler in list(logging.getLogger(name).handlers):
            logging.getLogger(name).removeHandler(handler)
            handler.close()


def test_a_failed_job_leaves_its_traceback_in_the_log_and_one_line_on_the_job(log_file):
    def broken():
        yield 1
        raise ZeroDivisionError("the third step divided by zero")

    job = Job(broken, label="broken-run", pool=JobPool(1))
    job.join(30)
    assert job.status == "failed" and "\n" not in job.error and "divided by zero" in job.error
    text = log_file.read_text()
    assert "job 'broken-run' failed" in text and "Traceback (most recent call last)" in text
    assert "ZeroDivisionError: the third step divided by zero" in text


def test_an_unexpected_cli_failure_prints_one_line_and_logs_the_traceback(log_file, monkeypatch, capsys):
    def run(args):
        raise RuntimeError("something the engine did not expect\nsecond line")

    monkeypatch.setattr(info_command, "run", run)
    assert main(["info", "--model", "mlp"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RuntimeError: something the engine did not expect" in err
    assert str(log_file) in err  # the line says where the traceback is
    text = log_file.read_text()
    assert "Traceback (most recent call last)" in text and "second line" in text


def test_a_refused_input_is_logged_as_one_line(log_file, capsys):
    assert main(["info", "--model", "no-such-model.onnx"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert "refused: --model 'no-such-model.onnx'" in log_file.read_text()


def test_the_engine_alone_configures_no_handler():
    import subprocess
    import sys

    code = ("import logging, compression.pipeline, compression.lm, compression.core.jobs; "
            "assert not logging.getLogger('compression').handlers")
    subprocess.run([sys.executable, "-c", code], check=True)
