"""Issue #14: does torch.compile pay for itself within a run? Eager and compiled, in turn.

    python bench/bench_compile.py --setting trec:1000:32 --setting agnews:2000:64 --steps 8 --repeats 3

Per setting, two trainers with the speed defaults (SpeedConfig(); same data and weights),
the second with its encoder wrapped in torch.compile (dynamic shapes, since length-grouped
batches change the sequence length from step to step). A round = `steps` CE steps and a
scoring pass over the train set. The compiled trainer's first round includes compiling (and
the recompiles the first new shapes and the switch to scoring trigger); then the two take
`repeats` rounds in turn, so that other load on the machine falls on both alike. From those:
the compile overhead (first compiled round minus an eager one), the steady-state speed-up,
and the number of epochs of this setting after which the compiled run would have caught up
with the eager one (never if it is not faster). Writes the section `speed-compile` of
docs/BENCHMARKS.md.
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

import torch  # noqa: E402

from bench.bench_speed import make_trainers  # noqa: E402
from bench.bench_speed_steady import timed_steps  # noqa: E402
from selfmix_core.benchmark.doc import git_revision, machine_description, publish  # noqa: E402


def _round(t, steps: int, seed: int) -> tuple[float, float, float]:
    """(seconds of the round, CE samples/s, scoring samples/s) for one round of CE steps + a scoring pass."""
    t0 = time.perf_counter()
    ce = timed_steps(t, "ce", steps, seed)
    s0 = time.perf_counter()
    t._score(t.train.texts)
    end = time.perf_counter()
    return end - t0, ce, len(t.train.texts) / (end - s0)


def measure(setting: str, steps: int, repeats: int, seed: int) -> dict:
    """Two trainers of one setting (same data and weights), one of them compiled; its first
    round includes compiling; then `repeats` rounds of each in turn, so that other load on
    the machine falls on both alike."""
    dataset, n, length = setting.split(":")
    # without bench_speed's FLOP-counting pre-hook: a real run has none, and dynamo would trace
    # it (graph breaks, recompiles)
    made = [make_trainers(dataset, int(n), int(length), 3, seed, with_test=False, paths=("new",), count_flops=False)
            for _ in range(2)]
    eager, comp, n_train = made[0][0]["new"][0], made[1][0]["new"][0], made[1][2]
    torch._dynamo.reset()  # an earlier setting's compiled graphs would be reused, hiding this one's cost
    comp.model.encoder = torch.compile(comp.model.encoder, dynamic=True)
    first = _round(comp, steps, seed)
    print(setting, "compiled, first round", [round(x, 2) for x in first], flush=True)
    rounds: dict[str, list[tuple[float, float, float]]] = {"eager": [], "compiled": []}
    for r in range(repeats):
        for name, t in (("eager", eager), ("compiled", comp)):
            rounds[name].append(_round(t, steps, seed + r + 1))
            print(setting, name, [round(x, 2) for x in rounds[name][-1]], flush=True)
    steady = rounds["compiled"]
    med = lambda rows, i: statistics.median(x[i] for x in rows)  # noqa: E731
    out = {"dataset": dataset, "n": n_train, "length": int(length), "eager": rounds["eager"], "steady": steady,
           "first": first[0], "round_eager": med(rounds["eager"], 0), "round_compiled": med(steady, 0),
           "ce": (med(rounds["eager"], 1), med(steady, 1)), "score": (med(rounds["eager"], 2), med(steady, 2))}
    out["overhead"] = out["first"] - out["round_eager"]
    # an epoch of this setting: n_train / CE samples/s of training plus one scoring pass
    out["epoch"] = tuple(n_train / out["ce"][i] + n_train / out["score"][i] for i in (0, 1))
    return out


def main(argv=None) -> int:
    from selfmix_core.speed import configure_threads

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--setting", action="append", default=None,
                   help="dataset:train texts:max length (repeatable; default trec:1000:32)")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-doc", action="store_true")
    a = p.parse_args(argv)
    threads = configure_threads(a.threads)
    revision, load = git_revision(), os.getloadavg()[0]
    results = [measure(s, a.steps, a.repeats, a.seed) for s in a.setting or ["trec:1000:32"]]
    each = lambda v: ", ".join(f"{x:.1f}" for x in v)  # noqa: E731
    args = [x for x in (sys.argv[1:] if argv is None else argv) if x != "--no-doc"]
    lines = [
        "## Speed: torch.compile, eager and compiled in turn (issue #14)", "",
        f"`python bench/bench_compile.py {shlex.join(args)}`; revision {revision}; "
        f"{machine_description(threads=threads)}; load average at the start {load:.1f}. The speed defaults; a round "
        f"= {a.steps} CE steps and one scoring pass over the train set; two trainers of the same weights, one with "
        "its encoder compiled by `torch.compile(dynamic=True)`; its first round (compiling included) is timed on "
        f"its own, then the two take {a.repeats} rounds each in turn. Compiling s = that first round minus an eager "
        "round. Epoch = the setting's training texts at the CE rate plus one scoring pass.", "",
        "| setting | CE samples/s eager → compiled (each) | scoring samples/s eager → compiled (each) "
        "| compiling s | epoch s eager → compiled | pays for itself after |",
        "|---|---|---|---:|---|---|"]
    verdicts = []
    for r in results:
        gain = r["epoch"][0] - r["epoch"][1]
        be = r["overhead"] / gain if gain > 0 else None
        name = f"{r['dataset']}-{r['n']:,} L{r['length']}"
        lines.append(
            f"| {name} | {r['ce'][0]:.1f} → {r['ce'][1]:.1f} ({r['ce'][1] / r['ce'][0]:.2f}x; "
            f"{each(x[1] for x in r['eager'])} → {each(x[1] for x in r['steady'])}) "
            f"| {r['score'][0]:.1f} → {r['score'][1]:.1f} ({r['score'][1] / r['score'][0]:.2f}x; "
            f"{each(x[2] for x in r['eager'])} → {each(x[2] for x in r['steady'])}) | {r['overhead']:.1f} "
            f"| {r['epoch'][0]:.1f} → {r['epoch'][1]:.1f} | {'never (not faster)' if be is None else f'{be:.1f} epochs'} |")
        verdicts.append((name, be))
    pays = [name for name, be in verdicts if be is not None and be <= 10]
    lines += ["", (f"Within a run of at most 10 epochs compiling paid for itself in: {', '.join(pays)}."
                   if pays else "In no setting did compiling pay for itself within a run of 10 epochs, the most "
                   "the app and the benchmarks run: the engine does not use `torch.compile`.")]
    text = "\n".join(lines)
    return publish("speed-compile", text, write=not a.no_doc)


if __name__ == "__main__":
    raise SystemExit(main())
