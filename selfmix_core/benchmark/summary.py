"""The hand-written reading guides of docs/BENCHMARKS.md, with every number computed from the cells.

A guide is a markdown template under docs/summaries/, named after its section
(`selfmix-comparison.md` fills `<!-- BEGIN selfmix-comparison -->` of docs/BENCHMARKS.md;
a first line `{% doc README.md %}` names another document). The prose is written by hand;
each number in it is a `{{ expression }}` evaluated here against the result cells committed
under runs/, so a number cannot drift from the tables drawn from the same cells:

    Its last accuracy is above CE's in {{ count(d > 0 for d in paired40) }} of {{ len(paired40) }} paired runs

The expressions (evaluated by expr.evaluate, which walks their syntax tree: no eval, no
imports, nothing starting with "_") see only the names in `namespace()` and a few pure builtins: `runs("bench-trec", "asym", 0.4)` is a
Setting, `setting("selfmix")` a Group of cells sorted by seed, `group.best` / `.last` /
`.memorised` per-seed Values in %, `trust` is benchmark.trust (issue #9's goals), and the
formatters are `f`, `pm`, `signed`, `span`, `nof`, `word`, `half_up`. `check(condition, claim)`
states a claim the prose makes in words and fails the rendering when the cells stop
supporting it. A `{% let name = expression %}` line (removed from the output) names a value.

    python -m selfmix_core.benchmark.summary            # rewrite every guide's section
    python -m selfmix_core.benchmark.summary --check    # exit 1 if a section differs

tests/test_bench_layout.py renders every template and compares it with the committed
section, so a drifted number fails the tests.
"""

from __future__ import annotations

import argparse
import builtins
import math
import re
import sys
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from .expr import evaluate
from .render import load_cells

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "runs"
TEMPLATES = ROOT / "docs" / "summaries"
MINUS = "\u2212"  # the typographic minus the guides use for negative numbers

_EXPR = re.compile(r"\{\{(.*?)\}\}", re.S)
_DOC = re.compile(r"^\{%\s*doc\s+(\S+)\s*%\}\n", re.M)
_LET = re.compile(r"^\{%\s*let\s+([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*%\}\n", re.M | re.S)


# ---- values ---------------------------------------------------------------------------------


class Values(list):
    """Per-seed numbers (already in the unit shown: % for accuracies), with their seeds.

    `a - b` pairs two Values by seed (the seeds both have), so a difference is always a
    paired one: same noisy labels, same warm-up."""

    def __init__(self, values: Iterable[float], seeds: Iterable[int]):
        super().__init__(float(v) for v in values)
        self.seeds = list(seeds)
        if len(self.seeds) != len(self):
            raise ValueError("one seed per value")

    def at(self, seed: int) -> float:
        return self[self.seeds.index(seed)]

    def __sub__(self, other: "Values") -> "Values":  # type: ignore[override]
        seeds = [s for s in self.seeds if s in other.seeds]
        return Values([self.at(s) - other.at(s) for s in seeds], seeds)

    def __add__(self, other: "Values") -> "Values":  # type: ignore[override]
        """Concatenation (two settings' paired runs pooled); seeds then repeat."""
        return Values([*self, *other], [*self.seeds, *other.seeds])

    @property
    def mean(self) -> float:
        return float(np.mean(list(self)))

    @property
    def std(self) -> float:
        return float(np.std(list(self), ddof=1))

    @property
    def lo(self) -> float:
        return min(self)

    @property
    def hi(self) -> float:
        return max(self)


class Group(list):
    """The cells of one (folder, dataset, noise, rate, method), sorted by seed."""

    def __init__(self, cells: Iterable[dict], label: str = ""):
        super().__init__(sorted(cells, key=lambda c: c["cell"]["seed"]))
        self.label = label
        if not self:
            raise KeyError(f"no cells for {label}")

    @property
    def seeds(self) -> list[int]:
        return [c["cell"]["seed"] for c in self]

    def seed(self, seed: int) -> dict:
        return next(c for c in self if c["cell"]["seed"] == seed)

    def values(self, get: Callable[[dict], float | None], scale: float = 100.0) -> Values:
        pairs = [(get(c), c["cell"]["seed"]) for c in self]
        pairs = [(v, s) for v, s in pairs if v is not None and not (isinstance(v, float) and math.isnan(v))]
        return Values([v * scale for v, _ in pairs], [s for _, s in pairs])

    @property
    def best(self) -> Values:
        return self.values(lambda c: c["best_test_accuracy"])

    @property
    def last(self) -> Values:
        return self.values(lambda c: c["last_test_accuracy"])

    @property
    def memorised(self) -> Values:
        """Share of the flipped training labels the last epoch predicts as their wrong given label."""
        return self.values(lambda c: c["epochs"][-1]["memorised"])

    def epoch(self, field: str, epoch: int, scale: float = 100.0) -> Values:
        """A per-epoch field (test_accuracy, detection_auroc, detection_recall, ...) at epoch `epoch` (1-based;
        -1 = the last)."""
        return self.values(lambda c: c["epochs"][epoch - 1 if epoch > 0 else epoch][field], scale)

    def warmup(self, field: str, scale: float = 100.0) -> Values:
        """A per-epoch field at the last warm-up epoch (the hand-over)."""
        return self.values(lambda c: c["epochs"][c["settings"]["warmup_epochs"] - 1][field], scale)

    def gmm(self, field: str, epoch: int) -> Values:
        return self.values(lambda c: (c["epochs"][epoch - 1]["gmm"] or {}).get(field), 1.0)

    def extra(self, field: str, scale: float = 1.0) -> Values:
        return self.values(lambda c: (c.get("extras") or {}).get(field), scale)

    def cell(self, field: str, scale: float = 1.0) -> Values:
        return self.values(lambda c: c[field], scale)


class Setting:
    """The cells of one output folder under runs/ at one (noise, rate), by method."""

    def __init__(self, cells: list[dict], folder: str, noise: str, rate: float):
        self.cells = [c for c in cells if c["cell"]["noise"] == noise and float(c["cell"]["rate"]) == rate]
        self.label = f"{folder} {noise} {rate:g}"
        if not self.cells:
            raise KeyError(f"no cells for {self.label}")

    def __call__(self, method: str) -> Group:
        return Group((c for c in self.cells if c["cell"]["method"] == method), f"{self.label} {method}")

    def has(self, method: str) -> bool:
        return any(c["cell"]["method"] == method for c in self.cells)

    @property
    def n_train(self) -> int:
        return self.cells[0]["n_train"]

    @property
    def n_test(self) -> int:
        return self.cells[0]["n_test"]


class Runs:
    """runs/<folder>/cells, loaded once per folder."""

    def __init__(self, root: Path = RUNS):
        self._root = Path(root)
        self._cells: dict[str, list[dict]] = {}

    def path(self, name: str) -> Path:
        """runs/<name>: one folder name, nothing above runs/."""
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"not a folder name under runs/: {name!r}")
        return self._root / name

    def folder(self, name: str) -> list[dict]:
        if name not in self._cells:
            cells = load_cells(self.path(name))
            if not cells:
                raise KeyError(f"no cells under {self.path(name)}")
            self._cells[name] = cells
        return self._cells[name]

    def __call__(self, folder: str, noise: str, rate: float) -> Setting:
        return Setting(self.folder(folder), folder, noise, rate)


# ---- formatting ------------------------------------------------------------------------------


def f(x: float, digits: int = 1, sign: bool = False) -> str:
    """A number as the guides write it: fixed digits, thousands separators, U+2212 for minus."""
    s = f"{x:+,.{digits}f}" if sign else f"{x:,.{digits}f}"
    if float(s.replace(",", "")) == 0:  # no "-0.0"
        s = s.replace("-", "+" if sign else "")
    return s.replace("-", MINUS)


def half_up(x: float, digits: int = 1, sign: bool = False) -> str:
    """Like f, but a 5 in the next digit rounds up (for differences of the paper's two-decimal
    numbers, which binary floats put a hair under the half: 86.82 - 83.67 -> +3.2)."""
    from decimal import ROUND_HALF_UP, Decimal

    d = Decimal(repr(round(x, 9))).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return f(float(d), digits, sign)


def pm(v: Values, digits: int = 1) -> str:
    """mean ± std (one value: the value), as the tables write it."""
    return f(v[0], digits) if len(v) == 1 else f"{f(v.mean, digits)} ± {f(v.std, digits)}"


def signed(v: Iterable[float], digits: int = 1) -> str:
    """"+20.5, +30.1, −4.2": per-seed differences."""
    return ", ".join(f(x, digits, sign=True) for x in v)


def span(v: Iterable[float], digits: int = 0, scale: float = 1.0, unit: str = "", outward: bool = True) -> str:
    """"79-100": the range of some values (one value: itself), by default rounded outwards
    (the lowest down, the highest up), so that every value lies inside the range written."""
    v = [x * scale for x in v]
    lo, hi = min(v), max(v)
    if outward:
        k = 10 ** digits
        lo, hi = math.floor(round(lo * k, 6)) / k, math.ceil(round(hi * k, 6)) / k
    lo, hi = f(lo, digits), f(hi, digits)
    return f"{lo}{unit}" if lo == hi else f"{lo}-{hi}{unit}"


def count(flags: Iterable[bool]) -> int:
    return sum(1 for x in flags if x)


def nof(flags: Iterable[bool]) -> str:
    """"17 of 18"."""
    flags = list(flags)
    return f"{count(flags)} of {len(flags)}"


def word(n: int) -> str:
    """Small counts in words, as prose writes them."""
    return ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
            "twelve")[n] if 0 <= n <= 12 else f"{n:,}"


def bl(g: Group, digits: int = 1) -> str:
    """"81.3 ± 2.3 / 56.2 ± 5.0": a group's best / last accuracy over its seeds."""
    return f"{pm(g.best, digits)} / {pm(g.last, digits)}"


def check(condition: bool, claim: str) -> str:
    """A claim the prose makes in words (e.g. "the only exception"): rendering fails when the
    cells no longer support it. Renders as nothing."""
    if not condition:
        raise AssertionError(f"the cells no longer support: {claim}")
    return ""


def paper(table: str, dataset: str, noise: str, rate: float, method: str, which: str) -> float:
    """The SelfMix paper's number (best or last) for the closest column (paper.paper_value)."""
    from .paper import paper_value

    pv = paper_value(table, dataset, noise, rate, method)
    if pv is None:
        raise KeyError(f"no paper value for table {table} {dataset} {noise} {rate} {method}")
    return pv[0 if which == "best" else 1]


def average(values: Iterable[float]) -> float:
    return float(np.mean(list(values)))


def namespace(root: Path = RUNS) -> dict:
    """The names a template's expressions may use: data and pure functions only (nothing
    that writes, imports or opens a path the template names)."""
    from types import SimpleNamespace

    from . import ensemble, trust
    from .methods import GROUPS

    runs = Runs(root)
    pure = {n: getattr(builtins, n) for n in ("len", "min", "max", "sum", "abs", "round", "sorted", "zip", "any",
                                               "all", "range", "int", "float", "str", "list", "enumerate")}
    def section_data():
        """trust.collect over the folders and settings the committed trust section's command names
        (relative to the repository root, as the command runs)."""
        from .doc import DOC

        a = trust.parser().parse_args(trust.section_command(committed_section("trust", DOC) or ""))
        return trust.collect([root.parent / x for x in a.folders], set(a.settings.split(",")) if a.settings else None)

    trust_view = SimpleNamespace(
        collect=lambda folders, keys=None: trust.collect([runs.path(x) for x in folders], keys),
        section_data=section_data,
        goals=trust.goals, goal_rows=trust.goal_rows, recommended=trust.recommended,
        recommended_auroc=trust.recommended_auroc, best_epoch_auroc=trust.best_epoch_auroc, recommended_accuracy=trust.recommended_accuracy,
        warmup_epochs_used=trust.warmup_epochs_used,
        rule_runs=trust.rule_runs,
        rule_runs_outside=lambda folders: trust.rule_runs_outside([runs.path(x) for x in folders]),
        signal_scores=trust.signal_scores,
        GOAL_AUROC_GAP=trust.GOAL_AUROC_GAP, GOAL_SHARE=trust.GOAL_SHARE, GOAL_STD=trust.GOAL_STD,
        ensemble_runs=lambda folder: ensemble.load_runs([runs.path(folder)]), ensemble_summary=ensemble.summarise,
        ensemble_setting=ensemble.setting_name)
    return {**pure, "runs": runs, "Values": Values, "f": f, "pm": pm, "signed": signed, "span": span,
            "count": count, "nof": nof, "word": word, "paper": paper, "bl": bl, "check": check,
            "half_up": half_up, "average": average, "trust": trust_view, "GROUPS": GROUPS}


# ---- rendering --------------------------------------------------------------------------------


def render_template(text: str, root: Path = RUNS, where: str = "template") -> str:
    """Fill `text`'s `{% let %}` lines and `{{ expressions }}` from the cells under `root`."""
    ns = namespace(root)
    out, pos = [], 0
    for m in _LET.finditer(text):
        out.append(text[pos:m.start()])
        try:
            ns[m.group(1)] = evaluate(m.group(2), ns)
        except Exception as exc:
            raise ValueError(f"{where}: let {m.group(1)}: {type(exc).__name__}: {exc}") from exc
        pos = m.end()
    out.append(text[pos:])
    text = "".join(out)

    def fill(m: re.Match) -> str:
        try:
            value = evaluate(m.group(1), ns)
        except Exception as exc:
            raise ValueError(f"{where}: {{{{{m.group(1).strip()}}}}}: {type(exc).__name__}: {exc}") from exc
        return value if isinstance(value, str) else f(value) if isinstance(value, float) else str(value)

    return _EXPR.sub(fill, text)


def templates(folder: Path = TEMPLATES) -> list[Path]:
    return sorted(Path(folder).glob("*.md"))


def render_section(template: Path, root: Path = RUNS) -> str:
    return render_template(_DOC.sub("", Path(template).read_text()), root, where=str(template))


def target_doc(template: Path, default: Path) -> Path:
    """The document a template's section lives in: `{% doc PATH %}` (from the repository root), else `default`."""
    m = _DOC.search(Path(template).read_text())
    return ROOT / m.group(1) if m else Path(default)


def committed_section(name: str, doc: Path) -> str | None:
    """The text between a section's markers in `doc`, as update_section wrote it."""
    m = re.search(re.escape(f"<!-- BEGIN {name} -->\n") + r"(.*?)\n" + re.escape(f"<!-- END {name} -->"),
                  Path(doc).read_text(), re.S)
    return m.group(1) if m else None


def main(argv: Sequence[str] | None = None) -> int:
    from .doc import DOC, update_section

    p = argparse.ArgumentParser(description="Redraw the reading guides of docs/BENCHMARKS.md from the cells.")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a section differs")
    p.add_argument("--doc", type=Path, default=DOC)
    p.add_argument("--runs", type=Path, default=RUNS)
    a = p.parse_args(argv)
    differ = []
    for t in templates():
        text, doc = render_section(t, a.runs).strip(), target_doc(t, a.doc)
        if a.check:
            if committed_section(t.stem, doc) != text:
                differ.append(t.stem)
        else:
            update_section(t.stem, text, doc=doc)
            print(f"updated section {t.stem!r} of {doc}")
    if differ:
        print(f"differ from their templates: {', '.join(differ)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
