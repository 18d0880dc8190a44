"""Issue #14: the old and new paths' steady-state speed, alternated to cancel other load.

    python bench/bench_speed_steady.py --setting trec:1000:32 --repeats 3 --steps 6 --threads 2

bench_speed.py times whole epochs, one path after the other; on a shared machine a load
spike can fall on one path's short scoring pass. Here the same two trainers (every speed
option off, and the defaults; same data, weights and split) take turns, `repeats` times
each: one scoring pass over the train set (dropout off, GMM excluded), `steps` SelfMix
steps and `steps` CE steps, each timed on its own. Reports the median of each and the
new/old ratio. The split that the SelfMix steps train on comes from a GMM on the
pretrained model's losses (the timing does not depend on its quality). Writes the section
`speed-steady` of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.bench_speed import make_trainers  # noqa: E402
from selfmix_core.benchmark.doc import git_revision, machine_description, publish  # noqa: E402


def timed_steps(t, kind: str, steps: int, seed: int) -> float:
    """Seconds per sample of `steps` steps of a CE or SelfMix epoch (stopped after them)."""
    from selfmix_core.trainer import TrainerCallback

    class StopAfter(TrainerCallback):
        seen = 0

        def on_step_end(self, trainer, p):
            StopAfter.seen = p.samples_seen
            if p.step >= steps:
                trainer.control.stop()

    t.callbacks = [StopAfter()]
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "selfmix":
            t._train_selfmix_epoch(2, np.random.default_rng(seed), gen)
        else:
            t._train_ce_epoch(2, "warmup", gen)
    seconds = time.perf_counter() - t0
    t.control._stop.clear()
    t.callbacks = []
    return StopAfter.seen / seconds


def top_ops(t, steps: int, seed: int, k: int) -> list[tuple[str, float, float]]:
    """torch.profiler over `steps` SelfMix steps: the k ops with the most self CPU time,
    as (name, seconds, share of all ops' self time)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        timed_steps(t, "selfmix", steps, seed)
    rows = [(e.key, e.self_cpu_time_total / 1e6) for e in prof.key_averages()]
    total = sum(s for _, s in rows) or 1.0
    return [(name, sec, sec / total) for name, sec in sorted(rows, key=lambda r: -r[1])[:k]]


def main(argv=None) -> int:
    from selfmix_core.speed import configure_threads

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--setting", default="trec:1000:32", help="dataset:train texts:max length")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--top-ops", type=int, default=0, help="also list the k ops with the most self time (profiler)")
    p.add_argument("--no-doc", action="store_true")
    a = p.parse_args(argv)
    threads = configure_threads(a.threads)
    revision = git_revision()
    load = os.getloadavg()[0]
    dataset, n, length = a.setting.split(":")
    trainers, _, n_train, _ = make_trainers(dataset, int(n), int(length), 3, a.seed, with_test=False)
    for t, _counter in trainers.values():  # a split to train SelfMix steps on
        loss, _ = t._score(t.train.texts)
        mask = t.split.in_training
        sel = t._select(loss[mask], t.split.labels[mask], np.random.default_rng(0))
        t.split.is_clean = np.zeros(len(mask), dtype=bool)
        t.split.is_clean[mask] = sel.is_clean
    res = {path: {"score": [], "selfmix": [], "ce": []} for path in trainers}
    for r in range(a.repeats):
        for path, (t, _counter) in trainers.items():
            t0 = time.perf_counter()
            t._score(t.train.texts)
            res[path]["score"].append(n_train / (time.perf_counter() - t0))
            res[path]["selfmix"].append(timed_steps(t, "selfmix", a.steps, a.seed + r))
            res[path]["ce"].append(timed_steps(t, "ce", a.steps, a.seed + r))
            print(path, {k: round(v[-1], 1) for k, v in res[path].items()}, flush=True)
    names = {"score": "scoring pass (samples/s)", "selfmix": f"SelfMix, {a.steps} steps (samples/s)",
             "ce": f"CE, {a.steps} steps (samples/s)"}
    lines = ["| measure | old: median (each) | new: median (each) | new / old |", "|---|---|---|---:|"]
    for k, name in names.items():
        o, nw = res["old"][k], res["new"][k]
        each = lambda v: ", ".join(f"{x:.1f}" for x in v)  # noqa: E731
        lines.append(f"| {name} | {statistics.median(o):.1f} ({each(o)}) | {statistics.median(nw):.1f} ({each(nw)}) "
                     f"| {statistics.median(nw) / statistics.median(o):.2f}x |")
    if a.top_ops:
        ops = {path: top_ops(t, a.steps, a.seed, a.top_ops) for path, (t, _c) in trainers.items()}
        lines += ["", f"Ops with the most self CPU time over {a.steps} SelfMix steps (torch.profiler; share of all "
                  "ops' self time):", "", "| rank | old | new |", "|---:|---|---|"]
        for i in range(a.top_ops):
            cell = lambda path: (f"{ops[path][i][0]} {ops[path][i][1]:.2f} s ({ops[path][i][2]:.0%})"  # noqa: E731
                                 if i < len(ops[path]) else "")
            lines.append(f"| {i + 1} | {cell('old')} | {cell('new')} |")
    cmd = "python bench/bench_speed_steady.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    text = (f"## Speed, steady state: the two paths in turn (issue #14)\n\n`{cmd}`; revision {revision}; "
            f"{machine_description(threads=threads)}; load average at the start {load:.1f}. {dataset}, "
            f"{n_train:,} training texts, max length {length}; old = every speed option off, new = the defaults; "
            f"{a.repeats} rounds, each timing the old path's scoring pass, SelfMix steps and CE steps, then the "
            "new path's.\n\n" + "\n".join(lines))
    return publish("speed-steady", text, write=not a.no_doc)


if __name__ == "__main__":
    raise SystemExit(main())
