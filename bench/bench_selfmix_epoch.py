"""Which part of a SelfMix epoch costs accuracy right after the hand-over?

Trains one CE warm-up (the harness's data, noise and seed; the paper's protocol of every
sample trained on), keeps its checkpoint, then runs ONE SelfMix epoch from that same
checkpoint under each variant (the paper's method, and one change at a time) and prints
the test accuracy and the flips' detection AUROC after it, beside the hand-over's. Writes
the section `selfmix-epoch` of docs/BENCHMARKS.md.

    python bench/bench_selfmix_epoch.py --dataset banking77 --max-train-samples 2000 \
        --noise sym:0.2 --warmup-epochs 6 --seed 0 --threads 1

No held-out slice is used here (validation fraction 0), so the warm-up length is fixed.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from selfmix_core.benchmark.doc import git_revision, machine_description, publish  # noqa: E402

VARIANTS = {
    "paper": {},
    "L_R averaged (kl_mean)": {"fast": {"kl_mean": True}},
    "lambda_r = 0": {"loss": {"lambda_r": 0.0}},
    "lambda_p = 0": {"loss": {"lambda_p": 0.0}},
    "epoch of n/32 steps (epoch_over_all)": {"fast": {"epoch_over_all": True}},
    "soft labels from the dropout passes": {"fast": {"soft_targets_from_rdrop": True}},
}


def variant_config(base, change: dict):
    out = base
    for part, fields in change.items():
        out = out.replace(**{part: dataclasses.replace(getattr(out, part), **fields)})
    return out


def main(argv=None) -> int:
    import torch

    from selfmix_core import trainer as trainer_mod
    from selfmix_core.benchmark.harness import BenchSettings, Cell, cell_config, load_bench_data, noisy_train
    from selfmix_core.benchmark.methods.base import pretrained_factory
    from selfmix_core.benchmark.methods.selfmix import SelfMixPaper

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="banking77")
    p.add_argument("--max-train-samples", type=int, default=2000)
    p.add_argument("--max-test-samples", type=int, default=None)
    p.add_argument("--noise", default="sym:0.2")
    p.add_argument("--warmup-epochs", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma list of: " + ", ".join(VARIANTS))
    p.add_argument("--no-doc", action="store_true")
    a = p.parse_args(argv)
    revision = git_revision()  # the code that runs (the tree may move on during a long run)
    torch.set_num_threads(a.threads)
    kind, rate = a.noise.split(":")
    settings = BenchSettings(max_train_samples=a.max_train_samples, max_test_samples=a.max_test_samples,
                             epochs=a.warmup_epochs + 1, warmup_epochs=a.warmup_epochs)
    cell = Cell(a.dataset, kind, float(rate), "selfmix-paper", a.seed)
    train, test = load_bench_data(ROOT.parent / "shared" / "data", a.dataset, settings)
    noisy, _ = noisy_train(train, kind, float(rate), a.seed)
    base = SelfMixPaper().configure(cell_config(cell, settings, "cpu"))
    factory, tokenizer = pretrained_factory(base.model)
    tmp = Path(tempfile.mkdtemp(prefix="selfmix-epoch-"))
    rows = []
    try:
        t0 = time.perf_counter()
        warm = trainer_mod.SelfMixTrainer(base, noisy, test, model=factory(noisy.num_classes, 0), tokenizer=tokenizer,
                                          checkpoint_dir=tmp / "ckpt")
        it = warm.run()
        for _ in range(a.warmup_epochs):
            r = next(it)
            print(f"warm-up epoch {r.epoch}: test {r.test_accuracy:.4f} auroc {r.detection.auroc:.3f}", flush=True)
        it.close()
        rows.append(("hand-over (after the warm-up)", r.test_accuracy, r.detection.auroc, time.perf_counter() - t0))
        # Every variant resumes the same checkpoint; only the SelfMix epoch's settings differ.
        real_changed = trainer_mod._changed_settings
        trainer_mod._changed_settings = lambda saved, current, prefix="": []
        try:
            for name in [v.strip() for v in a.variants.split(",") if v.strip()]:
                cfg = variant_config(base, VARIANTS[name])
                t1 = time.perf_counter()
                t = trainer_mod.SelfMixTrainer(cfg, noisy, test, model=factory(noisy.num_classes, 0),
                                               tokenizer=tokenizer, checkpoint_dir=tmp / "ckpt", resume=True)
                t.checkpoint_dir = None  # leave the hand-over checkpoint as it is for the next variant
                r = next(t.run())
                rows.append((name, r.test_accuracy, r.detection.auroc, time.perf_counter() - t1))
                print(f"{name}: test {r.test_accuracy:.4f} auroc {r.detection.auroc:.3f} "
                      f"losses {r.losses}", flush=True)
        finally:
            trainer_mod._changed_settings = real_changed
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    table = "\n".join(["| after | test accuracy | detection AUROC | seconds |", "|---|---:|---:|---:|"]
                      + [f"| {n} | {100 * acc:.1f} | {100 * auc:.1f} | {s:.0f} |" for n, acc, auc, s in rows])
    cmd = "python bench/bench_selfmix_epoch.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    text = (f"## One SelfMix epoch after the hand-over, one change at a time\n\n`{cmd}`; revision {revision}; "
            f"{machine_description(threads=a.threads)}. {a.dataset}, {len(noisy):,} training texts "
            f"(data seed 0), {kind} {float(rate):.0%} noise (seed {a.seed}), {a.warmup_epochs} CE warm-up epochs "
            "with every sample trained on, then one SelfMix epoch per row from the same checkpoint.\n\n" + table)
    return publish("selfmix-epoch", text, write=not a.no_doc)


if __name__ == "__main__":
    raise SystemExit(main())
