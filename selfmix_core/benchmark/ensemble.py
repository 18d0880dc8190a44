"""Issue #9's untried candidate: flags ensembled over epochs, against the rule's one epoch.

The code behind bench/bench_flag_ensemble.py (here so that the reading guides can use it):

    python bench/bench_flag_ensemble.py run --dataset agnews --max-train-samples 500 \
        --max-test-samples 500 --noise asym:0.4 --seeds 0,1,2 --out runs/i9-ensemble [--threads 1]
    python bench/bench_flag_ensemble.py render runs/i9-ensemble [--no-doc]

`run` trains `selfmix` (the paper's method with the label-free rule) exactly as the harness
cell of the same setting and seed (harness.cell_config, the same data subset and noise), keeps
every epoch's per-sample clean probability and loss, and scores each label-free way of
choosing the flags by the detection AUROC of its scores against the injected flips (the
true labels only judge; nothing below reads them to choose):

- rule: the recommended epoch's clean_prob (the best held-out accuracy; what the app shows);
- last: the last epoch's clean_prob;
- mean clean_prob, all epochs / SelfMix epochs: the clean probability averaged over epochs;
- mean loss rank, all epochs / SelfMix epochs: each epoch's class-normalised loss turned into
  a rank (0 = lowest loss), averaged over epochs (clean_prob saturates at 0 and 1; ranks do not);
- mean clean_prob, held-out top: averaged over the epochs whose held-out accuracy is within
  one standard error (sqrt(a(1-a)/n_val)) of the best.

Each run's per-epoch AUROC is checked against the trainer's own report and, at render time,
against the committed harness cell of the same key (`matching_cell`). `render` writes the
section "flag-ensemble" of docs/BENCHMARKS.md from the run files: per run, and for each way
the runs within 0.02 of the best single epoch's AUROC and the mean AUROC.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .doc import DOC, git_revision, machine_description, publish

ROOT = DOC.parent.parent  # the repository

SECTION = "flag-ensemble"
WAYS = ("rule", "last", "mean clean_prob, all epochs", "mean clean_prob, SelfMix epochs",
        "mean loss rank, all epochs", "mean loss rank, SelfMix epochs", "mean clean_prob, held-out top")


def _auroc(suspicion: np.ndarray, flipped: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(flipped, suspicion))


def _rank01(x: np.ndarray) -> np.ndarray:
    """(N,) -> (N,) ranks scaled to [0, 1] (0 = smallest; ties share their mean rank)."""
    from scipy.stats import rankdata

    return (rankdata(x) - 1) / max(len(x) - 1, 1)


def suspicion_by_way(epochs: list[dict]) -> dict[str, np.ndarray]:
    """Each way's per-sample suspicion (N,), higher = more likely mislabeled, from the epochs'
    label-free fields only: epoch, phase, clean_prob (N,), norm_loss (N,), val_accuracy, n_val,
    recommended_epoch (the last epoch's). Ways that have no epochs to use are left out."""
    by_epoch = {e["epoch"]: e for e in epochs}
    sm = [e for e in epochs if e["phase"] == "selfmix"]
    rec = epochs[-1]["recommended_epoch"] or epochs[-1]["epoch"]
    out = {"rule": 1 - by_epoch[rec]["clean_prob"], "last": 1 - epochs[-1]["clean_prob"],
           "mean clean_prob, all epochs": 1 - np.mean([e["clean_prob"] for e in epochs], axis=0),
           "mean loss rank, all epochs": np.mean([_rank01(e["norm_loss"]) for e in epochs], axis=0)}
    if sm:
        out["mean clean_prob, SelfMix epochs"] = 1 - np.mean([e["clean_prob"] for e in sm], axis=0)
        out["mean loss rank, SelfMix epochs"] = np.mean([_rank01(e["norm_loss"]) for e in sm], axis=0)
    scored = [e for e in epochs if e.get("val_accuracy") is not None and e.get("n_val")]
    if scored:
        best = max(e["val_accuracy"] for e in scored)
        se = np.sqrt(best * (1 - best) / scored[0]["n_val"])
        top = [e for e in scored if e["val_accuracy"] >= best - se]
        out["mean clean_prob, held-out top"] = 1 - np.mean([e["clean_prob"] for e in top], axis=0)
    return out


def _run(a: argparse.Namespace) -> int:
    import torch

    from .harness import BenchSettings, Cell, cell_config, load_bench_data, noisy_train, parse_ints, parse_noise
    from .methods import get_method, pretrained_factory

    if a.threads:
        torch.set_num_threads(a.threads)
    noises, seeds = parse_noise(a.noise), parse_ints(a.seeds, "seeds")  # bad input fails before any loading
    settings = BenchSettings(max_train_samples=a.max_train_samples, max_test_samples=a.max_test_samples)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    train, test = load_bench_data(a.data_root, a.dataset, settings)
    for noise, rate in noises:
        for seed in seeds:
            cell = Cell(a.dataset, noise, rate, "selfmix", seed)
            path = out / f"{cell.key}-n{a.max_train_samples}.json"  # one folder may hold several sizes
            if path.is_file():
                print(f"{cell.key}: done, skipped")
                continue
            config = cell_config(cell, settings, "cpu")
            factory, tok = pretrained_factory(config.model)
            noisy, info = noisy_train(train, noise, rate, seed)
            flipped = np.asarray(noisy.labels) != np.asarray(noisy.true_labels)
            epochs, rows = [], []
            for r in get_method("selfmix").run(noisy, test, config, factory, tok):
                epochs.append({"epoch": r.epoch, "phase": r.phase, "clean_prob": r.clean_prob.copy(),
                               "norm_loss": r.norm_loss.copy(), "val_accuracy": r.val_accuracy, "n_val": r.n_val,
                               "recommended_epoch": r.recommended_epoch})
                own = _auroc(1 - r.clean_prob, flipped)
                rows.append({"epoch": r.epoch, "phase": r.phase, "test_accuracy": r.test_accuracy,
                             "val_accuracy": r.val_accuracy, "auroc": own,
                             "report_auroc": r.detection.auroc if r.detection else None})
                print(f"{cell.key} epoch {r.epoch} [{r.phase}] test {r.test_accuracy:.4f} auroc {own:.4f} "
                      f"(report {rows[-1]['report_auroc']})", flush=True)
            ways = {w: _auroc(s, flipped) for w, s in suspicion_by_way(epochs).items()}
            doc = {"key": cell.key, "setting": f"{a.dataset}-{a.max_train_samples} {noise} {rate:g}", "seed": seed,
                   "n_train": len(noisy), "noise": info, "epochs": rows, "recommended_epoch": epochs[-1]["recommended_epoch"],
                   "ways": ways, "command": " ".join(["python", "bench/bench_flag_ensemble.py"] + sys.argv[1:]),
                   "revision": git_revision(), "machine": machine_description()}
            path.write_text(json.dumps(doc, indent=1) + "\n")
            print(json.dumps({cell.key: ways}))
    return 0


def summarise(docs: list[dict]) -> dict[str, dict]:
    """Per way: runs within GOAL_AUROC_GAP (the trust goal's 0.02) of the run's best single-epoch AUROC,
    runs it has, mean AUROC."""
    from .trust import GOAL_AUROC_GAP

    res = {}
    for w in WAYS:
        have = [d for d in docs if w in d["ways"]]
        if have:
            best = [max(e["auroc"] for e in d["epochs"]) for d in have]
            res[w] = {"within": sum(d["ways"][w] >= b - GOAL_AUROC_GAP for d, b in zip(have, best)), "runs": len(have),
                      "mean": float(np.mean([d["ways"][w] for d in have]))}
    return res


def load_runs(folders: list) -> list[dict]:
    """The run files of `folders`, by setting and seed; ValueError when there are none."""
    docs = sorted((json.loads(p.read_text()) for f in folders for p in sorted(Path(f).glob("*.json"))),
                  key=lambda d: (d["setting"], d["seed"]))
    if not docs:
        raise ValueError(f"no run files in {', '.join(map(str, folders))}: run `bench_flag_ensemble.py run` first")
    return docs


def setting_name(d: dict) -> str:
    """'AG News-500 asym 40%', as the trust section names its settings (trust.setting_name)."""
    from .trust import setting_name as name

    return name({"cell": {"dataset": d["key"].split("-")[0], "noise": d["noise"]["kind"],
                          "rate": d["noise"].get("rate_requested", 0.0)}, "n_train": d["n_train"]})


def matching_cell(d: dict, runs: Path) -> tuple[str, float] | None:
    """The folder under `runs` whose harness cell of the same key, size and number of epochs is
    closest to this run (the largest per-epoch difference in detection AUROC), and that difference;
    None when no such cell is within 0.01 in every epoch: how far the run is the cell made again."""
    mine = [e["auroc"] for e in d["epochs"]]
    found = []
    for path in sorted(runs.glob(f"*/cells/{d['key']}.json")):
        cell = json.loads(path.read_text())
        theirs = [e.get("detection_auroc") for e in cell.get("epochs", [])]
        if cell.get("n_train") == d["n_train"] and len(theirs) == len(mine) and None not in theirs:
            found.append((max(abs(t - m) for t, m in zip(theirs, mine)), path.parent.parent.name))
    if not found or min(found)[0] > 0.01:
        return None
    gap, folder = min(found)
    return folder, gap


def _cell_text(match: tuple[str, float] | None) -> str:
    if match is None:
        return "none within 0.01"
    folder, gap = match
    return f"`{folder}`" + ("" if gap <= 1e-9 else f" (AUROC within {gap:.1g} in every epoch)")


def missing_runs(docs: list[dict]) -> list[str]:
    """'Setting seed N' of each run that the docs' own commands name but that has no file (stopped unstarted)."""
    import shlex

    from .harness import parse_ints, parse_noise

    have = {(d["key"], d["n_train"]) for d in docs}
    want = []
    for command in sorted({d["command"] for d in docs}):
        a = parser().parse_args(shlex.split(command)[2:])
        for noise, rate in parse_noise(a.noise):
            for seed in parse_ints(a.seeds, "seeds"):
                key = f"{a.dataset}-{noise}-{rate:g}-selfmix-{seed}"
                if not any(k == key and (a.max_train_samples is None or n == a.max_train_samples) for k, n in have):
                    want.append(setting_name({"key": key, "n_train": a.max_train_samples or 0,
                                              "noise": {"kind": noise, "rate_requested": rate}}) + f" seed {seed}")
    return want


def render(folders: list[str]) -> str:
    docs = load_runs(folders)
    missing = missing_runs(docs)
    mismatch = [f"{d['key']} epoch {e['epoch']}" for d in docs for e in d["epochs"]
                if e["report_auroc"] is not None and abs(e["auroc"] - e["report_auroc"]) > 1e-9]
    head = ("| setting | seed | the harness cell it remakes | best epoch: AUROC | rule (epoch) | "
            + " | ".join(WAYS[1:]) + " |")
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for d in docs:
        best = max(d["epochs"], key=lambda e: e["auroc"])
        cells = [f"{100 * d['ways'][w]:.1f}" if w in d["ways"] else "" for w in WAYS[1:]]
        rows.append(f"| {setting_name(d)} | {d['seed']} | {_cell_text(matching_cell(d, ROOT / 'runs'))} | "
                    f"{best['epoch']}: {100 * best['auroc']:.1f} | "
                    f"{100 * d['ways']['rule']:.1f} ({d['recommended_epoch']}) | " + " | ".join(cells) + " |")
    s = summarise(docs)
    from .trust import GOAL_AUROC_GAP

    summ = [f"| way | runs within {GOAL_AUROC_GAP:g} of the best epoch's AUROC | mean AUROC |", "|---|---:|---:|"]
    summ += [f"| {w} | {v['within']} of {v['runs']} | {100 * v['mean']:.1f} |" for w, v in s.items()]
    rule = s["rule"]
    better = [w for w, v in s.items() if w != "rule" and v["within"] > rule["within"] and v["mean"] > rule["mean"]]
    verdict = (f"Better than the rule on both counts here: {', '.join(better)}." if better else
               "No way of ensembling beats the rule's one epoch on both counts here, so the rule's epoch stays "
               "what the app shows.")
    folders_txt = " ".join(folders)
    commands = sorted({d["command"] for d in docs})
    return f"""## Flags ensembled over epochs (issue #9's untried candidate)

Made by: {'; '.join(f'`{c}`' for c in commands)}, then `python bench/bench_flag_ensemble.py render {folders_txt}`.
Each run trains `selfmix` as the harness cell of the same setting and seed; revision {', '.join(sorted({d['revision'] for d in docs}))};
{docs[0]['machine']}. The true labels only judge each way's scores (detection AUROC against the injected flips,
%); every way chooses from label-free fields. Per-epoch AUROCs recomputed here agree with the trainer's own
report {'in every epoch' if not mismatch else 'except in ' + ', '.join(mismatch)}. The ways: the GMM's clean
probability or each epoch's class-normalised loss as a rank (0 = lowest), averaged over all epochs, over the SelfMix
epochs (from the hand-over on), or over the epochs whose held-out accuracy is within one standard error of the best.
{'Named by the commands but not run (stopped unstarted): ' + ', '.join(missing) + '.' if missing else ''}

{chr(10).join(rows)}

{chr(10).join(summ)}

{verdict}
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--dataset", required=True)
    r.add_argument("--max-train-samples", type=int, required=True)
    r.add_argument("--max-test-samples", type=int)
    r.add_argument("--noise", required=True, help="e.g. asym:0.4,idn:0.4")
    r.add_argument("--seeds", default="0,1,2")
    r.add_argument("--out", required=True)
    r.add_argument("--threads", type=int, default=0)
    r.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    d = sub.add_parser("render")
    d.add_argument("folders", nargs="+")
    d.add_argument("--no-doc", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    try:  # bad input (seeds, noise, a missing dataset or run folder) is one clear line, exit 2
        if a.cmd == "run":
            return _run(a)
        md = render(a.folders)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return publish(SECTION, md, write=not a.no_doc)


if __name__ == "__main__":
    raise SystemExit(main())
