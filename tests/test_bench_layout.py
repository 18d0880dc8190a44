"""The benchmark's layout: its own subpackage, no import cycle with the CLI, and
docs/BENCHMARKS.md redrawn from the committed cells exactly as committed."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "selfmix_core"


def _fresh(code: str) -> list[str]:
    """Run `code` in a fresh interpreter; it prints a JSON list, returned here."""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cli_import_loads_no_benchmark_module():
    loaded = _fresh("import json, sys, selfmix_core.cli; "
                    "print(json.dumps(sorted(m for m in sys.modules if m.startswith('selfmix_core'))))")
    assert "selfmix_core.records" in loaded
    assert not [m for m in loaded if m.startswith("selfmix_core.benchmark")], loaded


def test_benchmark_import_loads_no_cli():
    loaded = _fresh("import json, sys; import selfmix_core.benchmark.harness, selfmix_core.benchmark.render, "
                    "selfmix_core.benchmark.methods, selfmix_core.benchmark.doc; "
                    "print(json.dumps(sorted(m for m in sys.modules if m.startswith('selfmix_core'))))")
    assert "selfmix_core.cli" not in loaded, loaded


def _imports(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (function-level imports included), as absolute names."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if node.level else []
            mod = ".".join([*base, node.module] if node.module else base)
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}
    return out


def test_no_import_cycle_even_inside_functions():
    """The harness's side never imports the CLI; the engine never imports the benchmark,
    except cli.py, which wires up the `bench` subcommand (one direction only)."""
    bench_files = sorted((PACKAGE / "benchmark").rglob("*.py"))
    assert bench_files
    for f in bench_files:
        assert "selfmix_core.cli" not in _imports(f), f
    for f in sorted(PACKAGE.glob("*.py")):
        wanted = {m for m in _imports(f) if m.startswith("selfmix_core.benchmark")}
        if f.name == "cli.py":
            assert wanted <= {"selfmix_core.benchmark.harness", "selfmix_core.benchmark.harness.add_parser",
                              "selfmix_core.benchmark.harness.cmd_bench"}, wanted
        else:
            assert not wanted, (f, wanted)


def test_bench_subcommand_still_parses():
    from selfmix_core.cli import build_parser

    a = build_parser().parse_args(["bench", "--out", "x", "--render-only"])
    assert a.command == "bench" and a.render_only
