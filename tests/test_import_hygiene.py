"""core/ is the engine: it must run headless, so it never imports the UI layer, not even on
demand (`backfill tui` lives in tui.cli). import-linter (in .ci/run) holds the same contract over
the whole import graph."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
UI = ("textual", "rich", "tui")


def test_no_core_module_imports_the_ui_layer_statically():
    offenders = []
    for path in sorted((ROOT / "core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            where = str(path.relative_to(ROOT))
            offenders += [f"{where}:{node.lineno} {n}" for n in names if n.split(".")[0] in UI]
    assert offenders == []


def test_importing_every_core_module_loads_no_ui_package():
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in (ROOT / "core").rglob("*.py")
        if p.name != "__main__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {UI!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert len(modules) > 10
    assert result.stdout.strip() == "[]"
