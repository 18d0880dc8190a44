"""Issue #9's measurement: are SelfMix's flags trustworthy on small data, seed after seed?

Reads the result cells of the harness (`python -m selfmix_core bench ... --out runs/NAME`)
from the given run folders and writes the section `trust` of docs/BENCHMARKS.md: per
setting and seed, the last, best and recommended-epoch test accuracy of each SelfMix
variant beside CE and cleanlab, how long the warm-up lasted, and the issue's three goals
checked per seed, every figure computed from the cells:

  G1  SelfMix's last accuracy >= CE's last in every seed, and its mean >= CE's best mean;
  G2  seed-to-seed standard deviation of SelfMix's last accuracy <= 5 points;
  G3  the recommended epoch's detection AUROC within 0.02 of the best epoch's in >= 80% of
      runs, and its mean above cleanlab's in every setting.

    python bench/bench_trust.py runs/i9-trec1k runs/i9-agnews500 ...   # --no-doc: print only

(bench/bench_trust.py is the command; the code is here so that the reading guide of
docs/summaries/trust-summary.md can use it.)

The recommended epoch comes from the trainer's held-out slice (no true labels); methods
without a slice (selfmix-paper, selfmix-fast, CE) are judged at their last epoch.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from .doc import update_section
from .render import DISPLAY, load_cells, machine_line

SELFMIX = ("selfmix", "selfmix-loss", "selfmix-paper", "selfmix-fast")
GOAL_STD = 5.0  # points
GOAL_AUROC_GAP = 0.02
GOAL_SHARE = 0.8


def setting_name(cell: dict) -> str:
    c = cell["cell"]
    size = f"{cell['n_train']:,}"
    return f"{DISPLAY.get(c['dataset'], c['dataset'])}-{size} {c['noise']} {float(c['rate']):.0%}"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def _mean_std(values: list[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=float) * 100
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def _ms(values: list[float]) -> str:
    if not values:
        return "—"
    m, s = _mean_std(values)
    return f"{m:.1f} ± {s:.1f}" if len(values) > 1 else f"{m:.1f}"


def best_epoch_auroc(cell: dict) -> float | None:
    v = [e["detection_auroc"] for e in cell["epochs"] if e["detection_auroc"] is not None]
    return max(v) if v else None


def recommended(cell: dict) -> int:
    """The recommended epoch as the trainer decides it now (decision.recommend_epoch, the
    plain maximum), from the cell's per-epoch held-out accuracies (a pure function of them,
    so cells made while the trainer tried the one-standard-error rule are judged by
    today's rule); without them, the last epoch."""
    from ..decision import recommend_epoch

    return recommend_epoch({e["epoch"]: e.get("val_accuracy") for e in cell["epochs"]})[0]


def _row(cell: dict, epoch: int) -> dict:
    return next(e for e in cell["epochs"] if e["epoch"] == epoch)


def recommended_accuracy(cell: dict) -> float | None:
    return _row(cell, recommended(cell))["test_accuracy"]


def recommended_auroc(cell: dict) -> float | None:
    return _row(cell, recommended(cell))["detection_auroc"]


def warmup_epochs_used(cell: dict) -> int:
    return sum(1 for e in cell["epochs"] if e["phase"] == "warmup")


def method_of(cell: dict) -> str:
    """The cell's method; a `selfmix` cell made before FastChoices existed (its config has
    no "fast") ran the earlier engine, i.e. what `selfmix-fast` runs now (seed 0 of TREC-1,000
    reproduced such a cell to the last digit: the section says so)."""
    m = cell["cell"]["method"]
    if m == "selfmix" and "fast" not in cell["config"]:
        return "selfmix-fast"
    if m == "selfmix" and cell["config"].get("validation", {}).get("use_loss"):
        return "selfmix-loss"  # the hand-over also read the held-out loss (ValidationConfig.use_loss)
    return m


def setting_key(cell: dict) -> str:
    c = cell["cell"]
    return f"{c['dataset']}-{cell['n_train']}-{c['noise']}-{float(c['rate']):g}"


def folder_spec(folder: Path | str) -> tuple[Path, set[str] | None]:
    """"runs/X" -> (runs/X, None); "runs/X:cl,ce" -> (runs/X, {"cl", "ce"}): only those methods'
    cells of that folder (e.g. cleanlab rerun at its authors' settings, without the CE beside it)."""
    name = str(folder)
    if ":" in Path(name).name:
        path, only = name.rsplit(":", 1)
        return Path(path), {m for m in only.split(",") if m}
    return Path(name), None


def collect(folders: list[Path], keys: set[str] | None = None) -> dict[str, dict[str, dict[int, dict]]]:
    """{setting: {method: {seed: cell}}} for CE, cleanlab and the SelfMix variants; a later
    folder's cell replaces an earlier one's for the same setting, method and seed. A folder
    named "runs/X:m1,m2" contributes only those methods' cells (folder_spec)."""
    out: dict[str, dict[str, dict[int, dict]]] = {}
    for spec in folders:
        folder, only = folder_spec(spec)
        for cell in load_cells(folder):
            m = method_of(cell)
            if m not in ("ce", "cl", *SELFMIX) or (keys and setting_key(cell) not in keys) or (only and m not in only):
                continue
            out.setdefault(setting_name(cell), {}).setdefault(m, {})[cell["cell"]["seed"]] = cell
    return out


def per_seed_table(data) -> str:
    lines = ["| Setting | Method | seeds | last, per seed | last mean ± std | best mean ± std | "
             "recommended epoch: acc per seed | warm-up epochs | AUROC recommended / best epoch, per seed |",
             "|---|---|---:|---|---:|---:|---|---|---|"]
    for setting, methods in data.items():
        for m in ("ce", "cl", *SELFMIX):
            cells = methods.get(m)
            if not cells:
                continue
            seeds = sorted(cells)
            last = [cells[s]["last_test_accuracy"] for s in seeds]
            best = [cells[s]["best_test_accuracy"] for s in seeds]
            rec = ", ".join(f"{_pct(recommended_accuracy(cells[s]))} (ep {recommended(cells[s])})"
                            for s in seeds) if m in SELFMIX else "—"
            warm = ", ".join(str(warmup_epochs_used(cells[s])) for s in seeds) if m in SELFMIX else "—"
            if m == "cl":
                auc = ", ".join(_pct(cells[s]["extras"].get("quality_auroc")) for s in seeds) + " (cleanlab)"
            elif m in SELFMIX:
                auc = ", ".join(f"{_pct(recommended_auroc(cells[s]))} / {_pct(best_epoch_auroc(cells[s]))}"
                                for s in seeds)
            else:
                auc = "—"
            lines.append(f"| {setting} | `{m}` | {len(seeds)} | {', '.join(_pct(x) for x in last)} | {_ms(last)} | "
                         f"{_ms(best)} | {rec} | {warm} | {auc} |")
    return "\n".join(lines)


def goal_rows(data) -> list[dict]:
    """One row per setting and SelfMix variant: what each goal compares and whether it is met.
    A goal that cannot be judged (no CE or cleanlab cells beside it, one seed for a standard
    deviation) is None, not False. Keys: setting, method, seeds, wins / paired and g1_seeds
    (last >= CE's last in every paired seed), last_mean / ce_best / g1_mean, last_std / g2,
    close / n_close (recommended epoch's AUROC within GOAL_AUROC_GAP of the best epoch's),
    rec_auc / cl_auc / g3_cl (mean AUROC above cleanlab's); accuracies and AUROCs as fractions,
    last_mean, ce_best and last_std in points."""
    rows = []
    for setting, methods in data.items():
        ce, cl = methods.get("ce", {}), methods.get("cl", {})
        for m in SELFMIX:
            cells = methods.get(m)
            if not cells:
                continue
            seeds = sorted(cells)
            paired = [s for s in seeds if s in ce]
            wins = sum(cells[s]["last_test_accuracy"] >= ce[s]["last_test_accuracy"] for s in paired)
            last_mean, last_std = _mean_std([cells[s]["last_test_accuracy"] for s in seeds])
            ce_best = _mean_std([c["best_test_accuracy"] for c in ce.values()])[0] if ce else None
            rec = {s: recommended_auroc(cells[s]) for s in seeds}
            rec_aucs = [rec[s] for s in seeds if rec[s] is not None]
            close = [rec[s] >= best_epoch_auroc(cells[s]) - GOAL_AUROC_GAP for s in seeds if rec[s] is not None]
            cl_aucs = [c["extras"].get("quality_auroc") for c in cl.values() if c["extras"].get("quality_auroc")]
            rec_auc = float(np.mean(rec_aucs)) if rec_aucs else None
            cl_auc = float(np.mean(cl_aucs)) if cl_aucs else None
            rows.append({
                "setting": setting, "method": m, "seeds": seeds,
                "wins": wins, "paired": len(paired), "g1_seeds": wins == len(paired) if paired else None,
                "last_mean": last_mean, "ce_best": ce_best,
                "g1_mean": last_mean >= ce_best if ce_best is not None else None,
                "last_std": last_std if len(seeds) > 1 else None,
                "g2": last_std <= GOAL_STD if len(seeds) > 1 else None,
                "close": sum(close), "n_close": len(close),
                "rec_auc": rec_auc, "cl_auc": cl_auc,
                "g3_cl": rec_auc > cl_auc if rec_auc is not None and cl_auc is not None else None})
    return rows


def goals(data) -> tuple[str, dict]:
    """The goals table and, per SelfMix variant, the counts the summary quotes."""
    lines = ["| Setting | Method | seeds | G1: last >= CE last, seeds | G1: mean last vs CE best mean | "
             "G2: std of last | G3: AUROC within 0.02 of best epoch, runs | G3: mean AUROC vs cleanlab |",
             "|---|---|---:|---:|---|---:|---:|---|"]
    tally = {m: {"g1_seeds": [0, 0], "g1_mean": [0, 0], "g2": [0, 0], "g3_runs": [0, 0], "g3_cl": [0, 0]}
             for m in SELFMIX}
    verdict = {True: "met", False: "missed"}
    for r in goal_rows(data):
        t = tally[r["method"]]
        t["g1_seeds"][0] += r["wins"]
        t["g1_seeds"][1] += r["paired"]
        t["g3_runs"][0] += r["close"]
        t["g3_runs"][1] += r["n_close"]
        for key in ("g1_mean", "g2", "g3_cl"):
            if r[key] is not None:
                t[key][0] += r[key]
                t[key][1] += 1
        g1m = "—" if r["g1_mean"] is None else f"{r['last_mean']:.1f} vs {r['ce_best']:.1f} {verdict[r['g1_mean']]}"
        g2 = "—" if r["g2"] is None else f"{r['last_std']:.1f} {verdict[r['g2']]}"
        g3c = ("—" if r["g3_cl"] is None
               else f"{100 * r['rec_auc']:.1f} vs {100 * r['cl_auc']:.1f} {verdict[r['g3_cl']]}")
        lines.append(f"| {r['setting']} | `{r['method']}` | {len(r['seeds'])} | {r['wins']} of {r['paired']} | {g1m} | "
                     f"{g2} | {r['close']} of {r['n_close']} | {g3c} |")
    return "\n".join(lines), tally


def _has_val(cell: dict) -> bool:
    return any(e.get("n_val") for e in cell["epochs"])


def rule_runs(data, methods: tuple[str, ...] = ("selfmix",)) -> list[dict]:
    """The cells of `methods` that kept a held-out slice, by setting, then method, then seed."""
    return [c for by_method in data.values() for m in methods for _, c in sorted(by_method.get(m, {}).items())
            if _has_val(c)]


def rule_comparison(data) -> str:
    """The recommended epoch under two rules, recomputed from each `selfmix` cell's per-epoch
    held-out accuracies (decision.recommend_epoch without and with n_val): the plain
    maximum, and the latest epoch within one standard error of it."""
    from ..decision import recommend_epoch

    rows, tally = [], {"max": [0, 0, []], "1se": [0, 0, []]}
    for cell in rule_runs(data, ("selfmix", "selfmix-loss")):
        setting, m, seed = setting_name(cell), method_of(cell), cell["cell"]["seed"]
        accs = {e["epoch"]: e.get("val_accuracy") for e in cell["epochs"]}
        n_val = max((e.get("n_val") or 0) for e in cell["epochs"])
        by_epoch = {e["epoch"]: e for e in cell["epochs"]}
        best = best_epoch_auroc(cell)
        parts = []
        for rule, n in (("max", None), ("1se", n_val)):
            ep, _ = recommend_epoch(accs, n)
            auc = by_epoch[ep]["detection_auroc"]
            close = auc is not None and best is not None and auc >= best - GOAL_AUROC_GAP
            tally[rule][0] += close
            tally[rule][1] += 1
            tally[rule][2].append(auc)
            parts.append(f"{ep} | {_pct(by_epoch[ep]['test_accuracy'])} | {_pct(auc)}")
        rows.append(f"| {setting} | `{m}` | {seed} | {n_val} | " + " | ".join(parts) + f" | {_pct(best)} |")
    if not rows:
        return ""
    foot = "; ".join(f"{name}: within {GOAL_AUROC_GAP} of the best epoch's AUROC in {t[0]} of {t[1]} runs, mean "
                     f"AUROC {100 * float(np.mean(t[2])):.1f}" for name, t in (("maximum", tally["max"]),
                                                                               ("one standard error", tally["1se"])))
    return ("| Setting | method | seed | held out | max: epoch | test acc | AUROC | 1 SE: epoch | test acc | AUROC | "
            "best epoch's AUROC |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n" + "\n".join(rows)
            + f"\n\n{foot}.")


def _latest_max(cell: dict, score) -> int:
    """The epoch with the highest score(epoch row) (None scores skipped), the latest on a tie."""
    scored = [(score(e), e["epoch"]) for e in cell["epochs"]]
    return max((v, ep) for v, ep in scored if v is not None)[1]


# Label-free signals an epoch could be recommended by, each a function of a cell's per-epoch
# rows that reads no true or test label (issue #9 asks for candidates settled by measurement).
SIGNALS: dict[str, Callable[[dict], int]] = {
    "highest held-out accuracy (the rule)": recommended,
    "lowest held-out loss": lambda c: _latest_max(c, lambda e: None if e.get("val_loss") is None else -e["val_loss"]),
    "widest GMM separation": lambda c: _latest_max(c, lambda e: (e.get("gmm") or {}).get("separation")),
    "the hand-over (the first split SelfMix trains on)": lambda c: warmup_epochs_used(c),
    "the last epoch": lambda c: c["epochs"][-1]["epoch"],
}


def signal_scores(cells: list[dict]) -> dict[str, dict]:
    """For each label-free signal in SIGNALS: `close`, in how many of the `n` runs the epoch it
    picks has a detection AUROC within GOAL_AUROC_GAP of the run's best epoch, and the mean
    `auroc` and `accuracy` (fractions) of the epochs it picks (the test labels judge the pick,
    they never make it)."""
    out = {}
    for name, pick in SIGNALS.items():
        rows = [_row(c, pick(c)) for c in cells]
        out[name] = {"close": sum(r["detection_auroc"] >= best_epoch_auroc(c) - GOAL_AUROC_GAP
                                  for r, c in zip(rows, cells)),
                     "n": len(cells), "auroc": float(np.mean([r["detection_auroc"] for r in rows])),
                     "accuracy": float(np.mean([r["test_accuracy"] for r in rows]))}
    return out


def signal_comparison(cells: list[dict]) -> str:
    """signal_scores as a table."""
    if not cells:
        return ""
    lines = [f"| signal | runs within {GOAL_AUROC_GAP} of the best epoch's AUROC | mean AUROC | mean test acc |",
             "|---|---:|---:|---:|"]
    lines += [f"| {name} | {t['close']} of {t['n']} | {_pct(t['auroc'])} | {_pct(t['accuracy'])} |"
              for name, t in signal_scores(cells).items()]
    return "\n".join(lines)


def rule_runs_outside(folders: list[Path]) -> list[dict]:
    """The label-free rule's runs (`selfmix`, `selfmix-best`, with a held-out slice) in `folders`."""
    return [c for f in folders for c in load_cells(f) if method_of(c) in ("selfmix", "selfmix-best") and _has_val(c)]


def pooling_table(data, mean_folders: list[Path]) -> str:
    """[CLS] against mean pooling of the bundled MiniLM: per method and seed, test accuracy after
    each epoch; the [CLS] cells are the setting's cells above, the mean ones come from
    `mean_folders` (same data, noise and seeds)."""
    mean = collect(mean_folders)
    lines = []
    for setting, methods in mean.items():
        for m, cells in methods.items():
            for seed, cm in sorted(cells.items()):
                cc = data.get(setting, {}).get(m, {}).get(seed)
                for pooling, cell in (("[CLS]", cc), ("mean", cm)):
                    if cell is None:
                        continue
                    accs = ", ".join(_pct(e["test_accuracy"]) for e in cell["epochs"])
                    lines.append(f"| {setting} | `{m}` | {seed} | {pooling} | {accs} | {_pct(cell['best_test_accuracy'])} | "
                                 f"{_pct(cell['last_test_accuracy'])} |")
    if not lines:
        return ""
    return ("| Setting | Method | seed | pooling | test accuracy after each epoch | best | last |\n"
            "|---|---|---:|---|---|---:|---:|\n" + "\n".join(lines))


def summary(tally: dict) -> str:
    out = []
    for m in SELFMIX:
        t = tally[m]
        if not t["g1_seeds"][1]:
            continue
        share = t["g3_runs"][0] / t["g3_runs"][1] if t["g3_runs"][1] else float("nan")
        out.append(
            f"* `{m}`: last accuracy at or above CE's last in {t['g1_seeds'][0]} of {t['g1_seeds'][1]} paired seeds "
            f"(goal: all); mean last at or above CE's best mean in {t['g1_mean'][0]} of {t['g1_mean'][1]} settings "
            f"(goal: all); standard deviation of the last accuracy at most {GOAL_STD:g} points in {t['g2'][0]} of "
            f"{t['g2'][1]} settings (goal: all); recommended epoch's AUROC within {GOAL_AUROC_GAP} of the best "
            f"epoch's in {t['g3_runs'][0]} of {t['g3_runs'][1]} runs ({100 * share:.0f}%; goal: 80%), its mean "
            f"above cleanlab's in {t['g3_cl'][0]} of {t['g3_cl'][1]} settings (goal: all).")
    return "\n".join(out)


def commands(folders: list[Path]) -> str:
    lines = []
    for f in folders:
        runs = folder_spec(f)[0] / "runs.jsonl"
        if runs.is_file():
            for line in runs.read_text().splitlines():
                rec = json.loads(line)
                lines.append(f"    {rec['command']}   # {rec.get('wall_seconds', 0) / 60:.0f} min")
    return "\n".join(lines)


def cl_description(data) -> str:
    """How the shown cleanlab cells cross-validated, e.g. "5-fold cross-validated probabilities (3 epochs
    per fold; speed path)", one clause per distinct setting with the settings it covers."""
    kinds: dict[str, list[str]] = {}
    for setting, methods in data.items():
        for cell in methods.get("cl", {}).values():
            ex = cell.get("extras", {})
            kind = (f"{ex.get('cv_folds')}-fold cross-validated probabilities ({ex.get('cv_epochs')} epochs per fold"
                    + ("; speed path" if cell.get("settings", {}).get("speed") else "") + ")")
            if setting not in kinds.setdefault(kind, []):
                kinds[kind].append(setting)
    if len(kinds) <= 1:
        return next(iter(kinds), "K-fold cross-validated probabilities")
    return "; ".join(f"{k} on {', '.join(v)}" for k, v in kinds.items())


def path_note(data) -> str:
    """Which shown cells ran on the speed path (`--speed`), by setting and method, from the cells' settings;
    every other cell ran on the default path."""
    on = []
    for setting, methods in data.items():
        fast = [f"`{m}`" for m, cs in methods.items() if any(c.get("settings", {}).get("speed") for c in cs.values())]
        if fast:
            on.append(f"{setting} ({', '.join(fast)})")
    if not on:
        return "Every cell ran on the default path."
    return ("On the speed path (`--speed`; the section speed-equality compares it with the default path seed "
            "by seed): "
            + "; ".join(on) + ". Every other cell ran on the default path.")


def machine(data) -> str:
    """The machines the shown cells recorded (render.machine_line)."""
    return machine_line([c for ms in data.values() for cs in ms.values() for c in cs.values()])


def render(folders: list[Path], keys: set[str] | None = None, command: str = "",
           mean_folders: list[Path] = (), signal_folders: list[Path] = ()) -> str:
    data = collect(folders, keys)
    table, tally = goals(data)
    threads = sorted({c.get("torch_threads") for ms in data.values() for cs in ms.values() for c in cs.values()})
    return "\n\n".join([
        "## Trustworthy flags (issue #9): the paper's SelfMix, the earlier engine and the label-free rule, seed by seed",
        f"Made by `{command}` from the cells of these "
        "harness runs (bundled MiniLM-L6, [CLS] pooling, max length 32, 6 epochs of which 2 scheduled warm-up, "
        f"lr 5e-5, batch 32; torch threads per cell: {', '.join(str(t) for t in threads)}; two cells at a time). "
        f"Machine: {machine(data)}. Every cell's command is in `bench/issue9_runs.sh` (with the revision it ran "
        "at); the logged invocations:\n\n" + commands(folders),
        "Methods: `selfmix` = the paper's method + the label-free rule (10% held out with its given labels, warm-up "
        "extended while the held-out accuracy improves, up to 4 more epochs, recommended epoch = the "
        "epoch of the best held-out accuracy, recomputed from each cell's per-epoch held-out accuracies); "
        "`selfmix-loss` = the same with the hand-over also reading the held-out loss (tried, not "
        "kept); `selfmix-paper` = the paper's method and the authors' code, all samples trained on, fixed 2-epoch "
        "warm-up, judged at its last epoch; `selfmix-fast` = the earlier engine's shortcuts (`FastChoices`; its cells "
        "are the `selfmix` cells of the earlier `bench-*` runs wherever no new one exists: the new code's "
        "`selfmix-fast` reproduced TREC-1,000 seed 0's old cell to the last digit, and CE's test accuracies too); `ce` = "
        "plain fine-tuning; `cl` = cleanlab on " + cl_description(data) + ", then CE on the rest. Test "
        "accuracy in %, AUROC of the flipped labels in %. The recommended epoch never reads a true or test label. "
        + path_note(data),
        "### Goals, per setting\n\n" + table,
        "### In one line per variant (computed from the table above)\n\n" + summary(tally),
        "### Per seed\n\n" + per_seed_table(data),
        "### Which epoch to recommend: the best held-out accuracy, or the latest within one standard error of it\n\n"
        "Recomputed from the per-epoch held-out accuracies of every `selfmix` cell above (no true labels):\n\n"
        + rule_comparison(data),
        "### Other label-free signals, on the same runs\n\n"
        "Each signal picks one epoch per `selfmix` run above from its per-epoch record, without true labels; "
        "the test labels only judge the pick:\n\n" + signal_comparison(rule_runs(data))
        + ("\n\nThe same on the label-free rule's runs outside these settings (" + ", ".join(
            f"`{f.name}`" for f in signal_folders) + "; other sizes, and the speed path):\n\n"
           + signal_comparison(rule_runs_outside(signal_folders))
           if signal_folders else ""),
        *(["### [CLS] or mean pooling for the bundled MiniLM (trained with mean pooling)\n\n" +
           pooling_table(data, list(mean_folders))] if mean_folders else []),
    ])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench/bench_trust.py", description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path, help="harness output folders (runs/NAME)")
    p.add_argument("--settings", default=None,
                   help="comma list of settings to show, as dataset-ntrain-noise-rate (e.g. trec-1000-asym-0.4)")
    p.add_argument("--pooling-mean", nargs="*", type=Path, default=[],
                   help="folders of the same settings run with --pooling mean, compared with the [CLS] cells")
    p.add_argument("--signal-folders", nargs="*", type=Path, default=[],
                   help="more folders whose label-free-rule runs (other sizes, paths) the signal comparison also "
                        "reads, in a table of their own")
    p.add_argument("--no-doc", action="store_true", help="print instead of updating docs/BENCHMARKS.md")
    return p


def section_command(text: str) -> list[str]:
    """The arguments of the `python bench/bench_trust.py ...` command a trust section names (its
    "Made by" line): the reading guides read the same folders and settings as the section."""
    m = re.search(r"Made by `python bench/bench_trust.py ([^`]*)`", text)
    if not m:
        raise ValueError("the trust section names no `python bench/bench_trust.py ...` command; "
                         "redraw it with bench/bench_trust.py first")
    return shlex.split(m.group(1))


def section(argv: list[str]) -> str:
    """The section `python bench/bench_trust.py ARGV` writes (ARGV without --no-doc)."""
    a = parser().parse_args(argv)
    command = "python bench/bench_trust.py " + shlex.join(argv)
    return render(a.folders, set(a.settings.split(",")) if a.settings else None, command, a.pooling_mean,
                  a.signal_folders)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = parser().parse_args(argv)
    text = section([x for x in argv if x != "--no-doc"])
    if a.no_doc:
        print(text)
    else:
        update_section("trust", text)
        print(f"updated section 'trust' of docs/BENCHMARKS.md from {len(a.folders)} folders")
    return 0
