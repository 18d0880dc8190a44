"""Issue #14: do the speed options change what the method learns? The old and the new path
on the engine benchmark's setting, seed by seed, from harness folders.

    C="--datasets trec --max-train-samples 2000 --noise asym:0.4 --seeds 0,1,2 --max-length 32 --epochs 6 \
       --warmup-epochs 2 --lr 5e-5 --threads 1 --device cpu --no-doc"
    python -m selfmix_core bench $C --methods ce,selfmix --out runs/i14-trec2k-old        # every option off
    python -m selfmix_core bench $C --methods ce,selfmix --speed --out runs/i14-trec2k-new  # the defaults
    python -m selfmix_core bench $C --methods ce,selfmix --speed --speed-off bf16_cpu,group_by_length \
        --out runs/i14-trec2k-pure          # only the options that change neither batches nor precision
    python -m selfmix_core bench $C --methods selfmix --speed --speed-off group_by_length \
        --out runs/i14-trec2k-nogroup       # bf16 alone
    python -m selfmix_core bench $C --methods selfmix --speed --speed-off bf16_cpu --out runs/i14-trec2k-fp32
    python -m selfmix_core bench $C --methods ce,selfmix --speed --speed-off group_selfmix --out runs/i14-trec2k-randmix
    python bench/bench_speed_equality.py runs/i14-trec2k-old runs/i14-trec2k-new runs/i14-trec2k-pure \
        runs/i14-trec2k-nogroup runs/i14-trec2k-fp32 runs/i14-trec2k-randmix   # --no-doc: print only

(`i14-trec2k-pure` ran seed 0 only: it reproduced the old path's test accuracy and flag count in every
epoch, its AUROC within 0.00001: the per-sample losses differ in their seventh digit.)

The folders must differ in the speed options only (the harness records its settings in
every cell; this script refuses folders whose other settings differ). For every
(setting, method, seed) present in both it compares the last epoch's test accuracy and
detection AUROC, and the recommended epoch's where the method recommends one; the goal of
the issue ("unchanged within 0.01") is checked on the mean over seeds of the paired
differences, and the seed-to-seed spread of those differences is shown beside it, because a
different batch order alone moves a single seed by more than that. Writes the section
`speed-equality` of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from selfmix_core.benchmark.doc import publish  # noqa: E402
from selfmix_core.benchmark.render import load_cells, machine_line  # noqa: E402

TOLERANCE = 0.01
SECTION = "speed-equality"


def _setting(cell: dict) -> tuple:
    c = cell["cell"]
    return (c["dataset"], c["noise"], c["rate"], cell["n_train"])


def _comparable(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if k not in ("speed", "speed_off")}


def pair_cells(old: list[dict], new: list[dict]) -> list[tuple[dict, dict]]:
    """(old cell, new cell) for every key in both folders, in key order. Raises ValueError when
    the folders' settings differ in anything but the speed options, or when the old folder
    ran with them on or the new one without."""
    if not old or not new:
        raise ValueError("each folder needs at least one finished cell (cells/*.json)")
    s_old, s_new = old[0]["settings"], new[0]["settings"]
    if _comparable(s_old) != _comparable(s_new):
        diff = sorted(k for k in set(s_old) | set(s_new)
                      if k not in ("speed", "speed_off") and s_old.get(k) != s_new.get(k))
        raise ValueError(f"the folders differ in more than the speed options: {', '.join(diff)}")
    if s_old.get("speed") or not s_new.get("speed"):
        raise ValueError("the first folder must be made without --speed and the second with it")
    by_key = {c["key"]: c for c in new}
    return [(c, by_key[c["key"]]) for c in sorted(old, key=lambda c: c["key"]) if c["key"] in by_key]


def _values(cell: dict) -> dict[str, float | None]:
    epochs = cell.get("epochs") or [{}]
    out = {"last acc": cell.get("last_test_accuracy"),
           # methods that do not flag (CE) still have each epoch's loss-ranking AUROC
           "last AUROC": (cell.get("detection_last") or {}).get("auroc", epochs[-1].get("detection_auroc")),
           "best acc": cell.get("best_test_accuracy")}
    if cell.get("detection_recommended"):  # methods with the label-free rule (CE's "recommended" is its last)
        out["recommended acc"] = cell.get("recommended_test_accuracy")
        out["recommended AUROC"] = (cell.get("detection_recommended") or {}).get("auroc")
    return out


def _fmt(v: float | None, scale: float = 100.0) -> str:
    return "—" if v is None else f"{scale * v:.1f}"


def _label(settings: dict) -> str:
    off = settings.get("speed_off") or ""
    return "new" if not off else f"new without {', '.join(x.strip() for x in off.split(','))}"


def _same_epochs(o: dict, n: dict) -> str:
    """How many epochs of the two runs have exactly the same test accuracy and AUROC."""
    eo, en = o.get("epochs") or [], n.get("epochs") or []
    same = sum(a.get("test_accuracy") == b.get("test_accuracy") and a.get("detection_auroc") == b.get("detection_auroc")
               for a, b in zip(eo, en))
    return f"{same} of {max(len(eo), len(en))}"


def _variant(old: list[dict], new: list[dict], label: str, goals_here: bool) -> tuple[list[str], list[tuple]]:
    """The per-seed table, the means and (for the full new path) the goals of one variant."""
    groups: dict[tuple, list[tuple[dict, dict]]] = {}
    for o, n in pair_cells(old, new):
        groups.setdefault((_setting(o), o["cell"]["method"]), []).append((o, n))
    lines = [f"| setting | method | seed | measure | old | {label} | difference | epochs identical to the old path |",
             "|---|---|---:|---|---:|---:|---:|---|"]
    summary, goals = [], []
    for (setting, method), rows in groups.items():
        name = f"{setting[0]}-{setting[3]:,} {setting[1]} {setting[2]:.0%}"
        values: dict[str, list[tuple[float, float]]] = {}
        for o, n in rows:
            vo, vn = _values(o), _values(n)
            for i, measure in enumerate(m for m in vo if vo[m] is not None and vn.get(m) is not None):
                values.setdefault(measure, []).append((vo[measure], vn[measure]))
                lines.append(f"| {name} | `{method}` | {o['cell']['seed']} | {measure} | {_fmt(vo[measure])} "
                             f"| {_fmt(vn[measure])} | {100 * (vn[measure] - vo[measure]):+.1f} "
                             f"| {_same_epochs(o, n) if i == 0 else ''} |")
        for measure, pairs_ in values.items():
            ds = [b - a for a, b in pairs_]
            mo, mn = float(np.mean([a for a, _ in pairs_])), float(np.mean([b for _, b in pairs_]))
            spread = float(np.std(ds, ddof=1)) if len(ds) > 1 else None
            own = float(np.std([a for a, _ in pairs_], ddof=1)) if len(ds) > 1 else None
            summary.append((name, method, measure, len(ds), mo, own, mn, float(np.mean(ds)), spread))
            if goals_here and measure.startswith("last"):
                se = "" if spread is None else f" (standard error {100 * spread / np.sqrt(len(ds)):.1f})"
                goals.append((f"{name} `{method}`: mean {measure} within {TOLERANCE:g} ({len(ds)} seed{'s' if len(ds) > 1 else ''})",
                              abs(float(np.mean(ds))) <= TOLERANCE, f"{100 * float(np.mean(ds)):+.1f} points{se}"))
    lines += ["", f"Means over seeds, {label} against old:", "",
              "| setting | method | measure | seeds | old mean | old: std across seeds | new mean | mean difference "
              "| std of the differences | standard error of the mean difference |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, method, measure, k, mo, so, mn, md, sd in summary:
        fmt = lambda v: "—" if v is None else f"{100 * v:.1f}"  # noqa: E731
        lines.append(f"| {name} | `{method}` | {measure} | {k} | {100 * mo:.1f} | {fmt(so)} | {100 * mn:.1f} "
                     f"| {100 * md:+.1f} | {fmt(sd)} | {fmt(None if sd is None else sd / np.sqrt(k))} |")
    return lines, goals


def render(old_dir: Path, new_dirs: Path | list[Path], command: str) -> str:
    """The section: every folder of `new_dirs` (made with --speed, some options perhaps off
    with --speed-off) against the old path's folder, seed by seed; the goal is checked for the
    full new path (no option off)."""
    new_dirs = [new_dirs] if isinstance(new_dirs, Path) else list(new_dirs)
    old = load_cells(old_dir)
    variants = [(d, load_cells(d)) for d in new_dirs]
    s = old[0]["settings"] if old else {}
    folders = ", ".join(f"`{d.name}` ({_label(cells[0]['settings']) if cells else 'empty'})" for d, cells in variants)
    lines = [
        "## Speed: does the new path learn the same? Old and new path, seed by seed (issue #14)", "",
        f"`{command}`, from the harness folders `{old_dir.name}` (old: every speed option off) and {folders}, made "
        "by the commands in the script's docstring (new: `--speed`, the defaults of `SpeedConfig`; a `--speed-off` "
        "folder turns the named options off again)."
        + (f" Settings: {s['max_train_samples']} training texts, max length {s['max_length']}, {s['epochs']} epochs "
           f"of which {s['warmup_epochs']} scheduled warm-up, lr {s['lr']:g}, batch {s['batch_size']}, data seed "
           f"{s['data_seed']}." if s else "")
        + f" Machine: {machine_line(old + [c for _, cells in variants for c in cells])}.", "",
        "Values in %; AUROC = detection AUROC of the flipped labels (for CE, of its loss ranking); differences in "
        "points. The recommended epoch is the label-free rule's (methods that have one); best = the best epoch's "
        "test accuracy (read with the test labels, for this comparison only). Epochs identical = epochs whose test "
        "accuracy and AUROC equal the old path's to the last digit."]
    goals = []
    for d, cells in variants:
        label = _label(cells[0]["settings"]) if cells else d.name
        block, g = _variant(old, cells, label, goals_here=label == "new")
        lines += ["", f"### Old path and {label} (`{d.name}`)", ""] + block
        goals += g
    if goals:
        lines += ["", "| goal | met | measured |", "|---|---|---|"]
        lines += [f"| {g} | {'yes' if ok else '**no**'} | {m} |" for g, ok, m in goals]
        missed = [g for g, ok, _ in goals if not ok]
        lines += ["", f"{len(goals) - len(missed)} of {len(goals)} goals met" + (
            "; missed: " + "; ".join(missed) + "." if missed else ".")]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old", type=Path, help="harness folder made without --speed")
    p.add_argument("new", type=Path, nargs="+",
                   help="harness folders made with --speed (and perhaps --speed-off), otherwise the same settings")
    p.add_argument("--no-doc", action="store_true")
    a = p.parse_args(argv)
    args = sys.argv[1:] if argv is None else list(argv)
    command = "python bench/bench_speed_equality.py " + shlex.join([x for x in args if x != "--no-doc"])
    try:
        text = render(a.old, a.new, command)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return publish(SECTION, text, write=not a.no_doc)


if __name__ == "__main__":
    raise SystemExit(main())
