"""The suite's own rules: in CI nothing skips, whatever asked for the skip."""

import os
import subprocess
import sys

from conftest import ROOT

SKIPS = '''
import pytest

@pytest.mark.skipif(True, reason="by a mark")
def test_marked():
    pass

def test_called():
    pytest.skip("by a call")

@pytest.mark.xfail(reason="expected to fail")
def test_expected_failure():
    assert False
'''


def _pytest(tmp_path, ci: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_skips.py").write_text(SKIPS)
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(ROOT / "tests")}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-q",
                           "--rootdir", str(tmp_path), str(tmp_path / "test_skips.py")],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)


def test_in_ci_every_skip_fails_with_its_reason(tmp_path):
    result = _pytest(tmp_path, "true")
    assert result.returncode == 1, result.stdout
    assert "1 failed, 1 xfailed, 1 error" in result.stdout  # a skip mark acts in set-up: an error there
    assert "CI must not skip: Skipped: by a mark" in result.stdout
    assert "CI must not skip: Skipped: by a call" in result.stdout


def test_outside_ci_a_skip_is_a_skip(tmp_path):
    result = _pytest(tmp_path, "")
    assert result.returncode == 0, result.stdout
    assert "2 skipped, 1 xfailed" in result.stdout
