"""The tables of one benchmark output folder, drawn from its result cells only.

render(OUT) is what `python -m selfmix_core bench` writes into its section of
docs/BENCHMARKS.md (`--render-only` redraws it from the committed cells under runs/):
the paper's Table 3/4/5 layouts, detection quality, SelfMix vs cleanlab, the hand-over
per seed, the per-epoch curves and the cost. Nothing here runs a model or imports the
harness.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

DISPLAY = {"trec": "TREC", "agnews": "AG News", "imdb": "IMDB", "banking77": "Banking77"}


def load_cells(out: str | Path) -> list[dict]:
    folder = Path(out) / "cells"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def _stat(values: Iterable[float | None], scale: float = 100.0, digits: int = 1) -> str:
    v = [float(x) * scale for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not v:
        return "—"
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{np.mean(v):.{digits}f} ± {np.std(v, ddof=1):.{digits}f}"


def _setting_label(setting: tuple[str, str, float]) -> str:
    d, k, r = setting
    return f"{DISPLAY.get(d, d)} {k} {r:.0%}" if k != "none" else f"{DISPLAY.get(d, d)} clean"


def _method_order(names: Iterable[str]) -> list[str]:
    from .methods import METHODS

    order = list(METHODS)
    return sorted(set(names), key=lambda n: order.index(n) if n in order else len(order))


def _group(cells: list[dict]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for c in cells:
        k = c["cell"]
        out.setdefault((k["dataset"], k["noise"], float(k["rate"]), k["method"]), []).append(c)
    return out


DAGGER = "\u2020"  # marks a method whose cells did not run at its authors' settings


def departures(cells: list[dict]) -> dict[str, list[str]]:
    """Method name -> why, one entry per cell, for the cells that did not run at their
    authors' settings (each method's `departs_from_authors`: cells made before issue #12
    fixed Co-Teaching's ramp, SCE's alpha, NM-Net's transition and CL's folds)."""
    from .methods import METHODS

    out: dict[str, list[str]] = {}
    for c in cells:
        method = METHODS.get(c["cell"]["method"])
        why = method.departs_from_authors(c) if method else None
        if why:
            out.setdefault(c["cell"]["method"], []).append(why)
    return out


def _name(method: str, cells: Iterable[dict]) -> str:
    """`method`, with a dagger when one of `cells` did not run at its authors' settings."""
    return f"`{method}` {DAGGER}" if method in departures(list(cells)) else f"`{method}`"


def departures_note(cells: list[dict]) -> str:
    """The footnote to the daggers: which methods, how many cells, and what differed."""
    dep = departures(cells)
    if not dep:
        return ""
    lines = [f"{DAGGER} Not at the authors' settings: cells made before issue #12 ran these baselines as the SelfMix "
             "authors' scripts (else the method's paper) do; they are the earlier code's results, kept as they ran, "
             "and issue #12's rerun sections (`i12-*-baselines`) hold the same cells at the authors' settings.", ""]
    for m in _method_order(dep):
        whys = sorted(set(dep[m]))
        lines.append(f"- `{m}` ({len(dep[m])} cell{'s' if len(dep[m]) != 1 else ''}): {'; '.join(whys)}")
    return "\n".join(lines)


def _seeds_note(groups: dict[tuple, list[dict]], keys: Iterable[tuple]) -> str:
    ns = sorted({len(groups[k]) for k in keys if k in groups})
    return "/".join(str(n) for n in ns) if ns else "0"


def accuracy_table(cells: list[dict], table: str, noise: str, methods: Sequence[str] | None = None,
                   settings_filter: Callable[[tuple], bool] | None = None) -> str:
    """Paper layout: rows = methods (best / last), columns = dataset x rate, ours | paper."""
    from .paper import paper_value

    groups = _group(cells)
    settings = sorted({k[:3] for k in groups if k[1] == noise and (settings_filter is None or settings_filter(k[:3]))})
    if not settings:
        return ""
    names = [m for m in (methods or _method_order(k[3] for k in groups)) if any((*s, m) in groups for s in settings)]
    head = "| Method | | " + " | ".join(f"{_setting_label(s)} ours | paper" for s in settings) + " |"
    sep = "|---|---|" + "---:|---:|" * len(settings)
    lines = [head, sep]
    for m in names:
        for which, field, idx in (("best", "best_test_accuracy", 0), ("last", "last_test_accuracy", 1)):
            row = [_name(m, (c for s in settings for c in groups.get((*s, m), []))) if which == "best" else "",
                   which]
            for s in settings:
                g = groups.get((*s, m), [])
                ours = _stat(c[field] for c in g)
                n = f" ({len(g)})" if g else ""
                pv = paper_value(table, s[0], s[1], s[2], m)
                row += [ours + n, f"{pv[idx]:.2f}" if pv else "—"]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def detection_table(cells: list[dict]) -> str:
    """Rows (setting, flagging method): AUROC, precision, recall, F1 of the last epoch's flags."""
    groups = _group(cells)
    rows = []
    order = _method_order(k[3] for k in groups)
    for key in sorted(groups, key=lambda k: (k[:3], order.index(k[3]))):
        g = groups[key]
        if not g[0]["method"]["flags"]:
            continue
        d = [c["detection_last"] for c in g]
        flagged = _stat((c["epochs"][-1]["n_noisy"] for c in g), scale=1, digits=0)
        noisy = _stat((c["noise"].get("rate_realised", 0) * c["n_train"] for c in g), scale=1, digits=0)
        rows.append(f"| {_setting_label(key[:3])} | {_name(key[3], g)} | {len(g)} | {_stat(x['auroc'] for x in d)} | "
                    f"{_stat(x['precision'] for x in d)} | {_stat(x['recall'] for x in d)} | "
                    f"{_stat(x['f1'] for x in d)} | {flagged} / {noisy} |")
    if not rows:
        return ""
    return ("| Setting | Method | seeds | AUROC | precision | recall | F1 | flagged / noisy |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|\n" + "\n".join(rows))


def head_to_head_table(cells: list[dict]) -> str:
    """SelfMix's clean_prob vs cleanlab on K-fold CV probabilities, same noisy data (paired seeds)."""
    groups = _group(cells)
    lines = []
    for s in sorted({k[:3] for k in groups}):
        cl = {c["cell"]["seed"]: c for c in groups.get((*s, "cl"), [])}
        sm = {c["cell"]["seed"]: c for c in groups.get((*s, "selfmix"), [])}
        ce = {c["cell"]["seed"]: c for c in groups.get((*s, "ce"), [])}
        seeds = sorted(set(cl) & set(sm))
        if not seeds:
            continue
        w = sm[seeds[0]]["settings"]["warmup_epochs"]
        det = lambda c, e: {k: c["epochs"][e][f"detection_{k}"] for k in ("auroc", "precision", "recall", "f1")}  # noqa: E731
        entries = [
            ("SelfMix clean_prob, last epoch", [det(sm[x], -1) for x in seeds],
             [sm[x]["wall_seconds"] for x in seeds], "whole SelfMix run (training included)"),
            (f"SelfMix after warm-up (epoch {w}: GMM on CE losses)", [det(sm[x], w - 1) for x in seeds],
             [sum(e["seconds"] for e in sm[x]["epochs"][:w]) for x in seeds], "the warm-up epochs"),
            ("cleanlab, K-fold CV probabilities" + (f" {DAGGER}" if departures([cl[x] for x in seeds]) else ""), [
                {"auroc": cl[x]["extras"].get("quality_auroc"), "precision": cl[x]["extras"].get("flag_precision"),
                 "recall": cl[x]["extras"].get("flag_recall"), "f1": cl[x]["extras"].get("flag_f1")} for x in seeds],
             [cl[x]["extras"]["cv_seconds"] + cl[x]["extras"]["cleanlab_seconds"] for x in seeds],
             f"{cl[seeds[0]]['extras']['cv_folds']} folds x {cl[seeds[0]]['extras']['cv_epochs']} epochs + "
             "find_label_issues"),
        ]
        ce_seeds = [x for x in seeds if x in ce]
        if ce_seeds:
            entries.append(("CE to the end + GMM on its losses (last epoch)", [det(ce[x], -1) for x in ce_seeds],
                            [ce[x]["wall_seconds"] for x in ce_seeds], "whole CE run"))
        for name, ds, walls, what in entries:
            lines.append(f"| {_setting_label(s)} | {name} | {len(ds)} | {_stat(d['auroc'] for d in ds)} | "
                         f"{_stat(d['precision'] for d in ds)} | {_stat(d['recall'] for d in ds)} | "
                         f"{_stat(d['f1'] for d in ds)} | {_stat(walls, scale=1, digits=0)} | {what} |")
    if not lines:
        return ""
    return ("| Setting | Detector | seeds | AUROC | precision | recall | F1 | wall (s) | wall covers |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|---|\n" + "\n".join(lines))


def curve_table(cells: list[dict], methods: Sequence[str] = ("ce", "selfmix")) -> str:
    """Test accuracy and memorisation per epoch (mean over seeds): the shape behind best vs last."""
    groups = _group(cells)
    keys = [k for k in sorted(groups) if k[3] in methods]
    if not keys:
        return ""
    e_max = max(len(c["epochs"]) for k in keys for c in groups[k])
    lines = ["| Setting | Method | seeds | " + " | ".join(f"ep {e}" for e in range(1, e_max + 1)) + " |",
             "|---|---|---:|" + "---:|" * e_max]
    for k in keys:
        g = groups[k]
        acc = [_stat(c["epochs"][e]["test_accuracy"] for c in g if len(c["epochs"]) > e) for e in range(e_max)]
        mem = [_stat(c["epochs"][e]["memorised"] for c in g if len(c["epochs"]) > e) for e in range(e_max)]
        lines.append(f"| {_setting_label(k[:3])} | `{k[3]}` test acc | {len(g)} | " + " | ".join(acc) + " |")
        lines.append(f"| | `{k[3]}` memorised | | " + " | ".join(mem) + " |")
    return "\n".join(lines)


def handover_table(cells: list[dict]) -> str:
    """Per SelfMix seed: how good the warm-up was when SelfMix took over, and the outcome.

    The first clean/noisy split comes from the warmed-up model; CE of the same seed (same
    noisy labels, same warm-up: the first epochs are identical) is shown beside it.
    """
    groups = _group(cells)
    lines = []
    for key in sorted(k for k in groups if k[3] == "selfmix"):
        ce = {c["cell"]["seed"]: c for c in groups.get((*key[:3], "ce"), [])}
        for c in sorted(groups[key], key=lambda c: c["cell"]["seed"]):
            w = c["settings"]["warmup_epochs"]
            e = c["epochs"][w - 1]
            sep = e["gmm"]["separation"] if e.get("gmm") else None
            other = ce.get(c["cell"]["seed"])
            lines.append(
                f"| {_setting_label(key[:3])} | {c['cell']['seed']} | {_stat([e['test_accuracy']])} | "
                f"{'—' if sep is None else f'{sep:.2f}'} | {_stat([e['detection_auroc']])} | "
                f"{_stat([e['detection_recall']])} | {_stat([c['best_test_accuracy']])} | "
                f"{_stat([c['last_test_accuracy']])} | {_stat([c['epochs'][-1]['memorised']])} | "
                + (f"{_stat([other['best_test_accuracy']])} | {_stat([other['last_test_accuracy']])} | "
                   f"{_stat([other['epochs'][-1]['memorised']])} |" if other else "— | — | — |"))
    if not lines:
        return ""
    return ("| Setting | seed | test acc after warm-up | GMM separation | split AUROC | split recall | "
            "SelfMix best | SelfMix last | SelfMix memorised | CE best | CE last | CE memorised |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n" + "\n".join(lines))


def cost_table(cells: list[dict]) -> str:
    """Per method and setting: seconds per epoch, wall per cell, peak RSS."""
    groups = _group(cells)
    lines = ["| Setting | Method | cells | s / epoch | wall / cell (s) | peak RSS (MB) |",
             "|---|---|---:|---:|---:|---:|"]
    order = _method_order(k[3] for k in groups)
    for k in sorted(groups, key=lambda k: (k[:3], order.index(k[3]))):
        g = groups[k]
        lines.append(f"| {_setting_label(k[:3])} | `{k[3]}` | {len(g)} | "
                     f"{_stat((c['seconds_per_epoch'] for c in g), scale=1)} | "
                     f"{_stat((c['wall_seconds'] for c in g), scale=1, digits=0)} | "
                     f"{max(c['peak_rss_mb'] for c in g):.0f} |")
    return "\n".join(lines)


def _last_title(runs: list[dict]) -> str | None:
    """The newest `--title` in the folder's invocation log, so `--render-only` keeps the heading."""
    for r in reversed(runs):
        try:
            words = shlex.split(r.get("command") or "")
        except ValueError:
            continue
        for i, w in enumerate(words[:-1]):
            if w == "--title":
                return words[i + 1]
    return None


def machine_line(cells: list[dict]) -> str:
    """The machines the cells recorded (each cell's `machine`, written where it ran), with
    their torch thread counts; cells made before cells recorded their machine are counted,
    never attributed to the machine that renders."""
    recorded: dict[str, int] = {}
    for c in cells:
        if c.get("machine"):
            recorded[c["machine"]] = recorded.get(c["machine"], 0) + 1
    missing = [c for c in cells if not c.get("machine")]
    cells_ = lambda n: f"{n} cell{'s' if n != 1 else ''}"  # noqa: E731
    parts = [m + (f" ({cells_(n)})" if missing or len(recorded) > 1 else "") for m, n in sorted(recorded.items())]
    if missing:
        threads = sorted({c["torch_threads"] for c in missing if c.get("torch_threads") is not None})
        which = f"the {cells_(len(missing))}" if not recorded else cells_(len(missing))
        parts.append(f"not recorded by {which} (made before cells recorded their machine"
                     + (f"; torch threads per cell: {', '.join(map(str, threads))})" if threads else ")"))
    return "; ".join(parts) if parts else "no cells"


def _out_of(run: dict) -> str | None:
    """The --out folder a logged invocation wrote to (None for a library call)."""
    args = shlex.split(run.get("command") or "")
    return args[args.index("--out") + 1] if "--out" in args[:-1] else None


def render(out: str | Path, title: str | None = None) -> str:
    """All tables for the cells in OUT, with the commands that made them and the machine
    the cells recorded."""
    out = Path(out)
    cells = load_cells(out)
    meta = json.loads((out / "bench.json").read_text()) if (out / "bench.json").is_file() else {"settings": {}}
    runs = [json.loads(x) for x in (out / "runs.jsonl").read_text().splitlines() if x.strip()] \
        if (out / "runs.jsonl").is_file() else []
    s = meta["settings"]
    title = title or _last_title(runs)
    parts = [f"## {title or 'Benchmark: ' + out.name}", ""]
    parts += [f"Machine: {machine_line(cells)}.", ""]
    parts += ["Settings (fixed for this output folder): " + ", ".join(f"{k}={v}" for k, v in s.items()) + ".", ""]
    if runs:
        side = sorted({o for o in map(_out_of, runs) if o and Path(o).name != out.name})
        parts += ["Commands (each resumes the same folder; finished cells are skipped):" if not side else
                  "Commands, as they ran (each resumes its --out folder; finished cells are skipped). Those writing to "
                  + ", ".join(f"`{o}`" for o in side) + f" ran beside the others, and their cells were copied into "
                  f"`{out.name}` unchanged:", ""]
        for r in runs:
            ran = len(r.get("ran", []))
            parts.append(f"- `{r.get('command') or '(library call)'}` — {r['started_at']}, {r['wall_seconds'] / 60:.1f} min, "
                         f"{ran} cells run, {len(r.get('skipped', []))} skipped, {len(r.get('failed', []))} failed, "
                         f"{len(r.get('not_run', []))} not started")
        parts.append("")
    parts += [f"{len(cells)} cells. Accuracy in %, mean ± std over seeds (seed count in brackets); "
              "`paper` is the SelfMix paper's five-run mean for the closest column (BERT-base, full-size or "
              "5k data, see docs).", ""]
    from .methods import GROUPS, RETIRED

    reference = [*GROUPS["reference"], *(m for m, g in RETIRED.items() if g == "reference")]

    main = [m for m in _method_order(c["cell"]["method"] for c in cells)
            if m not in GROUPS["ablations"] and m not in reference]
    for noise, table, name in (("asym", "3", "Asymmetric noise (paper Table 3 layout)"),
                               ("idn", "4", "Instance-dependent noise (paper Table 4 layout)"),
                               ("sym", "-", "Symmetric noise"), ("none", "-", "No noise")):
        t = accuracy_table(cells, table, noise, methods=main)
        if t:
            parts += [f"### {name}", "", t, ""]
    abl = ["selfmix", *GROUPS["ablations"], *reference]
    t = accuracy_table(cells, "5", "asym", methods=abl, settings_filter=lambda s: s[2] >= 0.4)
    t_idn = accuracy_table(cells, "5", "idn", methods=abl)
    if any(c["cell"]["method"] in abl[1:] for c in cells):
        parts += ["### Ablations and reference-code variants (paper Table 5 layout: 40% asymmetric noise)", ""]
        parts += [t, ""] if t else []
        parts += ["Instance-dependent noise:", "", t_idn, ""] if t_idn and any(
            c["cell"]["method"] in abl[1:] and c["cell"]["noise"] == "idn" for c in cells) else []
    note = departures_note(cells)
    if note:
        parts += [note, ""]
    for heading, t in (("Detection quality of the methods that flag samples (last epoch)", detection_table(cells)),
                       ("Detection head-to-head: SelfMix vs cleanlab on the same noisy data", head_to_head_table(cells)),
                       ("SelfMix per seed: the warm-up at the hand-over and the outcome (CE of the same seed "
                        "beside it; the GMM split is the one SelfMix's first epoch trains on)", handover_table(cells)),
                       ("Test accuracy and memorisation per epoch (memorised = share of flipped training samples "
                        "predicted as their wrong label)", curve_table(cells)),
                       ("Cost", cost_table(cells))):
        if t:
            parts += [f"### {heading}", "", t, ""]
    return "\n".join(parts)
