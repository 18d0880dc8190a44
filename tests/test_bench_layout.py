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
                    "selfmix_core.benchmark.summary, selfmix_core.benchmark.methods, selfmix_core.benchmark.doc; "
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


# ---- docs/BENCHMARKS.md and README.md redrawn from the committed cells -------------------------

BENCH_SECTIONS = ["bench-trec", "bench-trec2k", "bench-trec-warmup4", "bench-agnews", "bench-agnews5k"]


@pytest.mark.parametrize("name", BENCH_SECTIONS)
def test_bench_sections_are_redrawn_byte_for_byte(name):
    """`python -m selfmix_core bench --out runs/NAME --render-only` would write exactly the committed section."""
    from selfmix_core.benchmark.doc import DOC
    from selfmix_core.benchmark.render import render
    from selfmix_core.benchmark.summary import committed_section

    assert committed_section(name, DOC) == render(ROOT / "runs" / name).strip()


@pytest.mark.parametrize("name", ["i12-trec-full", "i12-trec1k-baselines", "i12-agnews500-baselines"])
def test_issue12_sections_are_redrawn_from_their_cells(name):
    """Sections drawn with --render-only --title: the same cells and title give the committed text."""
    from selfmix_core.benchmark.doc import DOC
    from selfmix_core.benchmark.render import DAGGER, render
    from selfmix_core.benchmark.summary import committed_section

    committed = committed_section(name, DOC)
    title = committed.splitlines()[0].removeprefix("## ")
    assert committed == render(ROOT / "runs" / name, title=title).strip()
    assert DAGGER not in committed  # every baseline cell here ran at its authors' settings


def test_old_baseline_cells_are_marked_in_their_tables():
    """bench-trec's Co-Teaching(+), SCE, CL and NM-Net cells predate the authors' settings: their rows
    carry the dagger and the note says what differed; ELR, CORES2, CE and SelfMix rows do not."""
    from selfmix_core.benchmark.doc import DOC
    from selfmix_core.benchmark.render import DAGGER
    from selfmix_core.benchmark.summary import committed_section

    text = committed_section("bench-trec", DOC)
    for m in ("co-teaching", "co-teaching-plus", "sce", "cl", "nm-net"):
        assert f"| `{m}` {DAGGER} | best |" in text, m
    for m in ("ce", "elr", "cores2", "selfmix"):
        assert f"| `{m}` | best |" in text, m
    assert "- `cl` (4 cells): 3 folds x 2 CV epochs" in text
    assert f"cleanlab, K-fold CV probabilities {DAGGER}" in text


def test_trust_section_is_redrawn_byte_for_byte(monkeypatch):
    """The section's own command (`python bench/bench_trust.py ...`, as it names it) reproduces it."""
    from selfmix_core.benchmark.doc import DOC
    from selfmix_core.benchmark.summary import committed_section
    from selfmix_core.benchmark.trust import section, section_command

    committed = committed_section("trust", DOC)
    monkeypatch.chdir(ROOT)  # the folders are named relative to the repository root
    assert section(section_command(committed)) == committed


def _templates():
    from selfmix_core.benchmark.summary import templates

    return templates()


@pytest.mark.parametrize("template", _templates(), ids=lambda p: p.stem)
def test_every_number_of_the_reading_guides_comes_from_the_cells(template):
    """The hand-written guides (docs/summaries/*.md, numbers as expressions over the cells)
    render to exactly what is committed: a number edited by hand, or a cell that changes
    under a claim, fails here. Redraw with `python -m selfmix_core.benchmark.summary`."""
    from selfmix_core.benchmark.doc import DOC
    from selfmix_core.benchmark.summary import committed_section, render_section, target_doc

    committed = committed_section(template.stem, target_doc(template, DOC))
    assert committed is not None, f"no section {template.stem} in {target_doc(template, DOC)}"
    assert committed == render_section(template).strip()


def test_guides_have_no_number_typed_by_hand_in_their_results():
    """The Short answer table and the paired counts are expressions, not literals."""
    text = (ROOT / "docs" / "summaries" / "selfmix-comparison.md").read_text()
    table = text[text.index("| Setting (training texts)"):text.index("Paper columns:")]
    for line in table.splitlines()[2:]:
        cells = line.split("|")[2:]
        assert all("{{" in c or c.strip() == "—" for c in cells if c.strip()), line
    assert "17 of" not in text and "paired runs" in text


def test_template_language(tmp_path):
    from selfmix_core.benchmark.summary import MINUS, Values, f, render_template, span

    a, b = Values([70.0, 60.0, 80.0], [0, 1, 2]), Values([65.0, 62.0], [2, 1])
    assert list(a - b) == [-2.0, 15.0] and (a - b).seeds == [1, 2]  # paired by seed, not by position
    assert f(-4.2, sign=True) == f"{MINUS}4.2" and f(0.04, sign=True) == "+0.0" and f(5000, 0) == "5,000"
    assert span([79.5, 99.5]) == "79-100" and span([79.5, 99.4], outward=False) == "80-99"
    assert render_template("{% let x = 1 + 1 %}\nx is {{ x }}, {{ f(2 / 3) }}{{ check(x == 2, 'two') }}") == "x is 2, 0.7"
    with pytest.raises(ValueError, match="no longer support: x is three"):
        render_template("{{ check(1 + 1 == 3, 'x is three') }}")
    with pytest.raises(ValueError, match="not reachable"):
        render_template("{{ __import__('os') }}")
    with pytest.raises(ValueError, match="'open' is not defined"):
        render_template("{{ open('/etc/passwd') }}")


def test_expression_evaluator_has_no_eval_and_no_way_out():
    from selfmix_core.benchmark.expr import ExpressionError, evaluate

    names = {"xs": [3, 1, 2], "sorted": sorted, "len": len, "d": {"a": 1}}
    assert evaluate("[x * 2 for x in xs if x > 1]", names) == [6, 4]
    assert evaluate("{k: v for k, v in d.items()}", names) == {"a": 1}
    assert evaluate("(lambda a, b: a - b)(5, 2) + sorted(xs, key=lambda x: -x)[0]", names) == 6
    assert evaluate("f'{xs[0]:.2f} / {len(xs)}' if 1 < 2 <= 2 else 'no'", names) == "3.00 / 3"
    assert evaluate("xs[1:] + [not xs, 7 // 2, -2 ** 2, 'a' in d and 'b' not in d]", names) == [1, 2, False, 3, -4, True]
    for bad in ("xs.__class__", "(y := 1)", "d._private", "[await x for x in xs]", "lambda *a: a"):
        with pytest.raises(ExpressionError):
            evaluate(bad, names)


def test_every_project_import_in_the_scripts_resolves():
    # A module moved (bench/report.py -> selfmix_core/benchmark/doc.py) must not leave a
    # script importing the old path inside a function, where only running it would tell.
    import importlib.util

    sys.path.insert(0, str(ROOT))
    try:
        missing = []
        for path in sorted([*(ROOT / "bench").glob("*.py"), *PACKAGE.rglob("*.py"), *(ROOT / "studio").glob("*.py"),
                            *(ROOT / "pages").glob("*.py"), ROOT / "app.py"]):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                        and node.module.split(".")[0] in ("bench", "selfmix_core", "studio"):
                    if importlib.util.find_spec(node.module) is None:
                        missing.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.module}")
        assert not missing, missing
    finally:
        sys.path.remove(str(ROOT))


def test_banking77_section_redraws_from_its_folder():
    # issue #11's section: the run's figures and the hand review under runs/, the example
    # texts from ../shared (skipped without it)
    sys.path.insert(0, str(ROOT))
    try:
        from bench import bench_banking77 as b77
    finally:
        sys.path.remove(str(ROOT))
    if not b77.TRAIN_CSV.is_file():
        pytest.skip("../shared/data/banking77 is absent")
    doc = (ROOT / "docs" / "BENCHMARKS.md").read_text()
    body = doc.split("<!-- BEGIN banking77-full -->\n", 1)[1].split("<!-- END banking77-full -->", 1)[0]
    assert body.strip() == b77.render(ROOT / "runs" / "i11-banking77-full").strip()


def test_explore_section_redraws_from_its_results():
    sys.path.insert(0, str(ROOT))
    try:
        from bench import bench_explore
    finally:
        sys.path.remove(str(ROOT))
    doc = (ROOT / "docs" / "BENCHMARKS.md").read_text()
    body = doc.split("<!-- BEGIN explore -->\n", 1)[1].split("<!-- END explore -->", 1)[0]
    res = json.loads((ROOT / "runs" / "bench-explore.json").read_text())
    assert body.strip() == bench_explore.render(res).strip()


def _bench_module(name: str):
    import importlib

    sys.path.insert(0, str(ROOT))
    try:
        return importlib.import_module(f"bench.{name}")
    finally:
        sys.path.remove(str(ROOT))


def test_speed_equality_section_redraws_from_its_folders():
    """Issue #14's accuracy comparison: the command the section names redraws it from runs/."""
    import re
    import shlex

    from selfmix_core.benchmark.doc import DOC
    from selfmix_core.benchmark.summary import committed_section

    eq = _bench_module("bench_speed_equality")
    committed = committed_section("speed-equality", DOC)
    command = re.search(r"`(python bench/bench_speed_equality\.py [^`]*)`", committed).group(1)
    old, *new = shlex.split(command)[2:]
    assert eq.render(ROOT / old, [ROOT / d for d in new], command).strip() == committed


def test_speed_section_redraws_from_its_figures():
    """bench_speed.py --render-only: the committed section from runs/bench-speed.json."""
    from selfmix_core.benchmark.doc import DOC
    from selfmix_core.benchmark.summary import committed_section

    speed = _bench_module("bench_speed")
    saved = json.loads((ROOT / "runs" / "bench-speed.json").read_text())
    text = speed.render(saved["results"], saved["peaks"], saved["command"], saved["threads"], saved["revision"],
                        saved["machine"])
    assert text.strip() == committed_section("speed", DOC)


def test_engine_render_only_describes_the_run_not_this_machine():
    """bench_engine.py --render-only names the machine, load and revision saved with the run; a run without
    them says so instead of naming the machine that redraws it."""
    engine = _bench_module("bench_engine")
    info = {"machine": "Some CPU, 2 cores (native bf16)", "revision": "abc1234", "load_before": 0.5}
    line = engine.describe_run(info, render_only=True)
    assert "Some CPU, 2 cores (native bf16)" in line and "Revision abc1234" in line and "0.50" in line
    from selfmix_core.benchmark.doc import machine_description

    old = engine.describe_run(None, render_only=True)
    assert "not recorded" in old and machine_description() not in old


def test_publish_prints_and_writes_the_section_unless_told_not_to(tmp_path, capsys):
    """The bench scripts' common ending: print the section; write it only without --no-doc."""
    from selfmix_core.benchmark.doc import publish

    doc = tmp_path / "B.md"
    doc.write_text("# B\n\n<!-- BEGIN s -->\nold\n<!-- END s -->\n")
    assert publish("s", "new text", write=False, doc=doc) == 0
    assert "new text" in capsys.readouterr().out and "old" in doc.read_text()
    assert publish("s", "new text", doc=doc) == 0
    assert doc.read_text() == "# B\n\n<!-- BEGIN s -->\nnew text\n<!-- END s -->\n"


def test_commands_heading_names_side_folders_whose_cells_were_copied_in(tmp_path):
    """A folder filled partly by invocations with another --out says so instead of 'each resumes the same
    folder' (i12-trec-full ran in side folders and was merged); a folder filled in place keeps the short heading."""
    import shutil

    from selfmix_core.benchmark.render import render

    src = ROOT / "runs" / "bench-agnews5k"
    dst = tmp_path / "bench-agnews5k"
    shutil.copytree(src, dst)
    assert "Commands (each resumes the same folder; finished cells are skipped):" in render(dst)
    runs = (dst / "runs.jsonl").read_text().splitlines()
    first = json.loads(runs[0])
    first["command"] = first["command"].replace("--out runs/bench-agnews5k", "--out runs/side")
    (dst / "runs.jsonl").write_text("\n".join([json.dumps(first), *runs[1:]]) + "\n")
    text = render(dst)
    assert "each resumes the same folder" not in text
    assert "Those writing to `runs/side` ran beside the others, and their cells were copied into `bench-agnews5k`" in text


def test_trust_methods_paragraph_names_the_cells_that_ran_on_the_speed_path():
    """The trust tables mix default-path and speed-path cells; the Methods paragraph names the speed-path ones by
    setting and method, read from the cells' own settings, and says when there are none."""
    from selfmix_core.benchmark.trust import path_note

    fast = {"settings": {"speed": True}}
    plain = {"settings": {"speed": False}}
    data = {"TREC-1,000 asym 40%": {"ce": {0: plain}, "cl": {0: fast, 1: plain}},
            "Banking77-2,000 sym 20%": {"selfmix": {0: {"settings": {}}}}}
    note = path_note(data)
    assert "TREC-1,000 asym 40% (`cl`)" in note and "`ce`" not in note and "Banking77" not in note
    assert path_note({"X": {"ce": {0: plain}}}) == "Every cell ran on the default path."


def test_reading_guides_read_the_folders_the_trust_section_names():
    """The trust guide and the README's results read trust.section_data(): the folders and settings of the trust
    section's own command, so a folder added to that command reaches the guides too; a section without the
    command is a clear error, not an empty table."""
    from selfmix_core.benchmark.trust import section_command

    assert section_command("Made by `python bench/bench_trust.py runs/a 'runs/b:cl' --settings x`, from") == [
        "runs/a", "runs/b:cl", "--settings", "x"]
    with pytest.raises(ValueError, match="names no `python bench/bench_trust.py"):
        section_command("## Trustworthy flags\n\nno command here")
    for name in ("trust-summary.md", "readme-results.md"):
        text = (ROOT / "docs" / "summaries" / name).read_text()
        assert "{% let T = trust.section_data() %}" in text
