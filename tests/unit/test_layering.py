"""The pure core imports no adapter, I/O framework, clock or environment."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "stream" / "core"
ALLOWED_TOP = {"pydantic", "river", "numpy", "stream", "__future__"}
FORBIDDEN_CALLS = ("os.environ", "time.time", "datetime.now", "datetime.utcnow", "random.random")


def test_core_imports_only_stdlib_pydantic_river_numpy() -> None:
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top == "stream":
                    assert name.startswith("stream.core"), f"{path.name} imports {name}"
                else:
                    allowed = top in ALLOWED_TOP or top in sys.stdlib_module_names
                    assert allowed, f"{path.name} imports {name}"
                assert top not in {"asyncio", "socket", "subprocess"}, f"{path.name} imports {name}"


def test_core_reads_no_clock_or_environment() -> None:
    for path in CORE.rglob("*.py"):
        text = path.read_text()
        for call in FORBIDDEN_CALLS:
            assert call not in text, f"{path.name} uses {call}"


def test_import_linter_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], capture_output=True, text=True, cwd=CORE.parents[1])
    assert result.returncode == 0, result.stdout + result.stderr


def test_importing_the_entry_points_does_nothing() -> None:
    """The CLI module loads no framework and reads no setting until a command runs."""
    code = (
        "import sys, stream, stream.cli, stream.config, stream.errors, stream.core.ingest;"
        "print(sorted(m for m in ('faust', 'aiokafka', 'kafka') if m in sys.modules))"
    )
    env = {"PATH": "/usr/bin:/bin", "MICROSEG_PARTITIONS": "not-a-number"}  # read only on load()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
