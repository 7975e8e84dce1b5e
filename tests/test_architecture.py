"""What the import contracts (.importlinter, run by `make test`) cannot say about the code's shape."""

import ast
from pathlib import Path

import pytest
from conftest import ROOT

APP_CODE = [p for folder in ("compression", "ui", "pages") for p in (ROOT / folder).rglob("*.py")]


def _calls_print(path: Path) -> list[int]:
    return [n.lineno for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print"]


def test_the_engine_never_prints_outside_the_cli():
    engine = [p for p in (ROOT / "compression").rglob("*.py") if "cli" not in p.parts and p.name != "__main__.py"]
    offenders = [f"{p.relative_to(ROOT)}:{line}" for p in engine for line in _calls_print(p)]
    assert not offenders


@pytest.mark.parametrize("path", APP_CODE, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_function_level_import_says_why(path):
    """Imports sit at the top; one inside a function needs a comment on its line saying why it is lazy."""
    lines = path.read_text().splitlines()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    assert "#" in lines[inner.lineno - 1], f"{path.name}:{inner.lineno} imports lazily without a reason"


def test_the_detector_sees_an_undocumented_lazy_import(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    import json\n    print(json)\n")
    with pytest.raises(AssertionError, match="without a reason"):
        test_a_function_level_import_says_why(sample)
    assert _calls_print(sample) == [3]
