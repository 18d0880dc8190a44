"""How long the demo's first epoch takes with the app's default settings.

    python bench/bench_demo.py [--epochs 1]

Loads the cached demo corpus (run `python -m selfmix_core.demo fetch` first), applies the
Data page's demo preset (1,000 stratified snippets, 20% symmetric noise, seed 0), trains
with the Train page's defaults (TrainConfig(): bundled MiniLM-L6, max length 64, batch 32)
through the same SelfMixTrainer the app's worker drives, and reports the wall time of each
epoch (training + scoring pass + GMM), written to the "demo" section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from selfmix_core.benchmark.doc import git_revision, machine_description, update_section  # noqa: E402


def main() -> None:
    from bench.bench_speed import demo_train
    from selfmix_core.config import TrainConfig
    from selfmix_core.trainer import SelfMixTrainer, TrainerControl

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=1, help="epochs to time (the first is a warm-up epoch)")
    a = p.parse_args()
    train, info = demo_train(1000, "sym", 0.2, 0)
    config = TrainConfig()
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    control = TrainerControl()
    trainer = SelfMixTrainer(config, train, control=control)
    setup = time.perf_counter() - t0
    rows = []
    for report in trainer.run():
        rows.append(report)
        print(f"epoch {report.epoch} [{report.phase}] {report.seconds:.1f} s (train {report.train_seconds:.1f} s, "
              f"score {report.score_seconds:.1f} s), detection AUROC {report.detection.auroc:.3f}", flush=True)
        if len(rows) >= a.epochs:
            control.stop()
    table = "\n".join(
        f"| {r.epoch} | {r.phase} | {r.seconds:.1f} | {r.train_seconds:.1f} | {r.score_seconds:.1f} | "
        f"{r.samples_trained / r.train_seconds:.1f} | {r.detection.auroc:.3f} |" for r in rows
    )
    md = f"""## Demo: the first epoch with the app's defaults (issue #3)

Command: `python bench/bench_demo.py --epochs {a.epochs}`. Data: the demo preset (1,000 Rotten Tomatoes snippets,
stratified, 20% symmetric noise, seed 0; realised rate {info.rate:.3f}). Settings: the Train page defaults
(`TrainConfig()`: bundled MiniLM-L6, max length 64, batch 32, lr 5e-5). Machine: {machine_description()}.
Load average when it started: {load_before:.2f}. Revision {git_revision()}.
Model and tokenizer loading took {setup:.1f} s.

| epoch | phase | seconds | training s | scoring s | train samples/s | detection AUROC |
|---|---|---|---|---|---|---|
{table}
"""
    print(md)
    update_section("demo", md)


if __name__ == "__main__":
    main()
