"""Issue #14 item 3: how soon does a provisional ranking come, and how good is it?

    python bench/bench_first_flags.py --setting trec:1000:32 --every 0.2 --seeds 0 --threads 2

Trains the first warm-up epoch with the speed defaults and SpeedConfig.provisional_every:
at every that fraction of the epoch the samples trained so far are scored with dropout
off and the GMM is fitted on them (trainer.on_provisional). Reports, per provisional
point, the seconds since the epoch began, the samples ranked and the detection AUROC
over them, beside the full first epoch's report (all training samples); and the first
point whose AUROC is within 0.05 of the full epoch's (the issue's measure). Writes the
section `speed-first-flags` of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_speed import load_setting  # noqa: E402
from selfmix_core.benchmark.doc import git_revision, machine_description, publish  # noqa: E402

GOAL_GAP = 0.05


def main(argv=None) -> int:
    from selfmix_core.config import ModelConfig, SpeedConfig, TrainConfig
    from selfmix_core.benchmark.methods.base import pretrained_factory
    from selfmix_core.speed import configure_threads
    from selfmix_core.trainer import SelfMixTrainer, TrainerCallback

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--setting", default="trec:1000:32", help="dataset:train texts:max length")
    p.add_argument("--every", type=float, default=0.2)
    p.add_argument("--seeds", default="0")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-doc", action="store_true")
    a = p.parse_args(argv)
    threads = configure_threads(a.threads)
    revision = git_revision()
    dataset, n, length = a.setting.split(":")
    lines = ["| seed | after | seconds | samples ranked | detection AUROC | within 0.05 of the full epoch |",
             "|---:|---|---:|---:|---:|---|"]
    summary = []
    for seed in [int(s) for s in a.seeds.split(",")]:
        noisy, _, noise = load_setting(dataset, int(n), seed, with_test=False)
        config = TrainConfig(epochs=3, warmup_epochs=2, extra_warmup_epochs=0, seed=seed, device="cpu",
                             model=ModelConfig(max_length=int(length)), speed=SpeedConfig(provisional_every=a.every))
        factory, tokenizer = pretrained_factory(config.model)
        points = []

        class Keep(TrainerCallback):
            def on_provisional(self, trainer, flags):
                points.append(flags)
                print(f"seed {seed}: {flags.fraction:.0%} at {flags.seconds:.1f} s, AUROC {flags.auroc:.3f}", flush=True)

        trainer = SelfMixTrainer(config, noisy, model=factory(noisy.num_classes, 0), tokenizer=tokenizer,
                                 callbacks=[Keep()])
        it = trainer.run()
        full = next(it)
        it.close()
        target = full.detection.auroc
        first = None
        for f in points:
            ok = f.auroc is not None and f.auroc >= target - GOAL_GAP
            first = first or (f if ok else None)
            lines.append(f"| {seed} | {f.fraction:.0%} of epoch 1 (provisional) | {f.seconds:.1f} | {f.samples_seen:,} "
                         f"| {f.auroc:.3f} | {'yes' if ok else 'no'} |")
        lines.append(f"| {seed} | the full epoch 1 (scoring and GMM included) | {full.seconds:.1f} "
                     f"| {int(full.in_training.sum()):,} | {target:.3f} | — |")
        summary.append(f"seed {seed}: " + (f"the ranking after {first.fraction:.0%} of the epoch ({first.seconds:.1f} s, "
                                          f"AUROC {first.auroc:.3f}) is within {GOAL_GAP} of the full epoch's "
                                          f"({target:.3f}, {full.seconds:.1f} s)" if first else
                                          f"no provisional ranking came within {GOAL_GAP} of the full epoch's "
                                          f"AUROC ({target:.3f})"))
    cmd = "python bench/bench_first_flags.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    text = (f"## Speed: time to first flags (issue #14, item 3)\n\n`{cmd}`; revision {revision}; "
            f"{machine_description(threads=threads)}. {dataset}, {int(n):,} training texts, {noise[0]} "
            f"{noise[1]:.0%} noise, max length {length}, the speed defaults; a provisional ranking every "
            f"{a.every:.0%} of the first warm-up epoch (its scoring time counts in the later points' seconds). "
            "AUROC of a provisional ranking is over the samples it ranks; the full epoch's over every training "
            "sample.\n\n" + "\n".join(lines) + "\n\n" + "; ".join(summary) + ".")
    return publish("speed-first-flags", text, write=not a.no_doc)


if __name__ == "__main__":
    raise SystemExit(main())
