import ast
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_importing_the_engine_does_not_import_streamlit():
    code = ("import sys, compression, compression.models.loading, compression.models.facts, compression.cli;"
            "import compression.plots.common; print('streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_the_engine_never_prints_outside_the_cli():
    offenders = []
    for path in (ROOT / "compression").rglob("*.py"):
        if "cli" in path.parts or path.name == "__main__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                offenders.append(f"{Path(path).relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(n.split(".")[0] == "streamlit" for n in names), path
    assert not offenders
