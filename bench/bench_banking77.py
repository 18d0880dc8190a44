"""Issue #11's measurement: SelfMix on all of Banking77's training set, as a person would run
it, and 50 of its flags read by hand. Writes the section `banking77-full` of
docs/BENCHMARKS.md.

    # 1. train (the CLI's defaults; hours on 2 CPU cores)
    python -m selfmix_core train --train ../shared/data/banking77/train.csv \\
        --test ../shared/data/banking77/test.csv --text-column text --label-column category \\
        --epochs 3 --max-length 32 --seed 0 --device cpu --no-progress --out OUT
    # 2. keep what the section needs (no texts: they stay in ../shared) and pick the 50
    python bench/bench_banking77.py prepare OUT runs/i11-banking77-full
    #    ... fill runs/i11-banking77-full/hand_review.csv's verdict (and note) by reading ...
    # 3. the section, from the kept files, the verdicts and the texts in ../shared
    python bench/bench_banking77.py render runs/i11-banking77-full [--no-doc]

The 50 are the flagged samples of the flags epoch (the recommended one) with the lowest
label score: the first page the Review page shows. Verdicts, one of VERDICTS:
the given label is wrong and the suggestion right / the given label is wrong and the
suggestion wrong too / the given label is right / ambiguous (the text fits both).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRAIN_CSV = ROOT.parent / "shared" / "data" / "banking77" / "train.csv"
VERDICTS = {
    "wrong_suggestion_right": "given label wrong, suggestion right",
    "wrong_suggestion_wrong": "given label wrong, suggestion wrong too",
    "given_right": "given label right",
    "ambiguous": "ambiguous (the text fits both labels, or neither clearly)",
}
KEEP = ["index", "given_label", "predicted_label", "predicted_prob", "label_score", "clean_prob",
        "top1_label", "top1_prob", "top2_label", "top2_prob", "top3_label", "top3_prob"]
COMMAND = ("python -m selfmix_core train --train ../shared/data/banking77/train.csv --test "
           "../shared/data/banking77/test.csv --text-column text --label-column category --epochs 3 "
           "--max-length 32 --seed 0 --device cpu --no-progress --out OUT")


def prepare(run: Path, out: Path, n: int) -> None:
    """Copy metrics.json and epochs.jsonl, the flags epoch's flagged samples without their
    texts (flagged.csv), and a hand_review.csv of the `n` with the lowest label score."""
    metrics = json.loads((run / "metrics.json").read_text())
    samples = pd.read_csv(run / "samples.csv", keep_default_na=False, na_values=[""])
    out.mkdir(parents=True, exist_ok=True)
    for name in ("metrics.json", "epochs.jsonl"):
        shutil.copyfile(run / name, out / name)
    flagged = samples[samples["is_label_issue"].astype(str) == "True"][KEEP].sort_values(["label_score", "index"])
    flagged.to_csv(out / "flagged.csv", index=False)
    sheet = flagged.head(n)[["index", "given_label", "predicted_label", "label_score"]].assign(verdict="", note="")
    sheet_path = out / "hand_review.csv"
    if sheet_path.exists():
        old = pd.read_csv(sheet_path, keep_default_na=False)
        if list(old["index"]) == list(sheet["index"]):
            print(f"{sheet_path} exists with the same samples: kept (verdicts included)")
            sheet = None
    if sheet is not None:
        sheet.to_csv(sheet_path, index=False)
    texts = pd.read_csv(TRAIN_CSV)["text"]
    print(f"flags of epoch {metrics['flags_epoch']}: {len(flagged):,} flagged of {len(samples):,}")
    for row in flagged.head(n).itertuples():
        print(f"{row.index}\t{row.given_label} -> {row.predicted_label} ({row.label_score:.3f})\t{texts[row.index]}")


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def render(folder: Path) -> str:
    metrics = json.loads((folder / "metrics.json").read_text())
    flagged = pd.read_csv(folder / "flagged.csv", keep_default_na=False, na_values=[""])
    sheet = pd.read_csv(folder / "hand_review.csv", keep_default_na=False)
    bad = sorted(set(sheet["verdict"]) - set(VERDICTS))
    if bad:
        raise SystemExit(f"hand_review.csv: verdicts {bad} are not among {sorted(VERDICTS)}; read and fill them first")
    texts = pd.read_csv(TRAIN_CSV)["text"] if TRAIN_CSV.is_file() else None
    epochs = metrics["epochs"]
    n_train, flags_epoch = metrics["n_train"], metrics["flags_epoch"]
    try:  # the folder as the repository names it, wherever the command ran from
        shown = folder.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        shown = folder.as_posix()
    lines = [
        "## Banking77, all 10,003 training texts (issue #11)",
        "",
        f"`{COMMAND}` (`bench/bench_banking77.py`, which also made this section from the run's metrics.json and "
        f"the hand review in `{shown}`). Device: {metrics['device']}, {metrics['processes']} process; "
        "AMD EPYC, 2 cores, 24 GiB RAM, no GPU, torch 2.13.0+cpu; other work (tests, helpers' builds) shared the "
        "2 cores during the run, so the times are those of a busy machine. The labels are Banking77's own (no noise "
        f"injected); the test set is its {metrics['n_test']:,} texts. The CLI's defaults otherwise: 10% held out "
        "(given labels) for the label-free rule, 2 warm-up epochs plus up to 4 more while the held-out accuracy "
        "improves.",
        "",
        "| epoch | phase | test acc. % | held-out acc. % | flagged | epoch time (s) | of which training (s) | scoring (s) | train samples/s |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in epochs:
        lines.append(
            f"| {e['epoch']} | {e['phase']} | {_pct(e.get('test_accuracy'))} | {_pct(e.get('val_accuracy'))} | "
            f"{e['n_noisy']:,} | {e['seconds']:.0f} | {e['train_seconds']:.0f} | {e['score_seconds']:.0f} | "
            f"{e.get('train_samples_per_second') or 0:.1f} |")
    last = epochs[-1]
    lines += [
        "",
        f"{len(epochs)} epochs in {metrics['wall_seconds'] / 60:.0f} min (peak memory {metrics['peak_rss_mb']:,.0f} MB). "
        f"Recommended epoch: {metrics['recommended_epoch']} ({metrics['recommendation']}). Last test accuracy "
        f"{_pct(metrics['last_test_accuracy'])}%, best {_pct(metrics['best_test_accuracy'])}%. Warnings of the last "
        f"epoch: {'; '.join(last.get('warnings') or []) or 'none'}.",
        "",
        f"### 50 flagged samples read by hand",
        "",
        f"The flags of epoch {flags_epoch} (the recommended one): {len(flagged):,} of {n_train:,} samples "
        f"flagged ({100 * len(flagged) / n_train:.1f}%). The {len(sheet)} read are those with the lowest label score "
        "(the model's probability of the given label), the Review page's first page. Each was read and classified "
        "by hand (the verdicts and notes are in hand_review.csv):",
        "",
        "| verdict | samples | share |",
        "|---|---:|---:|",
    ]
    counts = sheet["verdict"].value_counts()
    for key, text in VERDICTS.items():
        c = int(counts.get(key, 0))
        lines.append(f"| {text} | {c} | {100 * c / len(sheet):.0f}% |")
    wrong = int(counts.get("wrong_suggestion_right", 0) + counts.get("wrong_suggestion_wrong", 0))
    lines += [
        "",
        f"Given label wrong in {wrong} of {len(sheet)}; the suggestion the right fix in "
        f"{int(counts.get('wrong_suggestion_right', 0))} of {len(sheet)}. Label scores of the 50: "
        f"{sheet['label_score'].min():.4f} to {sheet['label_score'].max():.4f}. For a reviewer working down "
        f"this page: {int(counts.get('wrong_suggestion_right', 0))} one-key accepts (A), "
        f"{int(counts.get('wrong_suggestion_wrong', 0))} relabels to another class, "
        f"{int(counts.get('given_right', 0))} keeps (K), and {int(counts.get('ambiguous', 0))} judgement calls "
        "where Banking77 separates intents by a nuance the text does not carry (e.g. pending or declined, a failed "
        "or a declined transfer, a dialogue turn without its context).",
    ]
    if texts is not None:
        lines += ["", "Examples (up to two of each verdict, the lowest label score first):", "",
                  "| # | text | given | suggested | label score | verdict | note |", "|---:|---|---|---|---:|---|---|"]
        for key in VERDICTS:
            for row in sheet[sheet["verdict"] == key].head(2).itertuples():
                text = str(texts[row.index]).replace("|", "\\|")
                lines.append(f"| {row.index} | {text} | {row.given_label} | {row.predicted_label} | "
                             f"{row.label_score:.4f} | {VERDICTS[key]} | {str(row.note).replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("prepare", help="keep the run's figures and pick the samples to read")
    a.add_argument("run", type=Path, help="the CLI's --out folder")
    a.add_argument("out", type=Path, help="folder under runs/ for the kept files")
    a.add_argument("--n", type=int, default=50)
    b = sub.add_parser("render", help="the section, from a prepared folder with its verdicts filled")
    b.add_argument("folder", type=Path)
    b.add_argument("--no-doc", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = p.parse_args(argv)
    if args.cmd == "prepare":
        prepare(args.run, args.out, args.n)
        return 0
    from selfmix_core.benchmark.doc import publish

    return publish("banking77-full", render(args.folder), write=not args.no_doc)


if __name__ == "__main__":
    raise SystemExit(main())
