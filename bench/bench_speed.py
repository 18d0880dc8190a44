"""Issue #14: how fast is an epoch, how far from what the hardware can do, and where the time goes.

    python bench/bench_speed.py --setting trec:1000:32:3 --setting agnews:1000:64:1 --seeds 0 --threads 2

Per setting (dataset:train texts:max length:epochs, 40% asymmetric noise on TREC, 20%
symmetric elsewhere, the first 2 epochs a CE warm-up; dataset `demo` is the app's demo
preset, as bench_demo.py draws it, with no test set) and seed, it trains the same data
from the same pretrained weights twice, epoch by epoch in turn so that load from other
work on the machine falls on both alike: once with every speed option off (the engine as
it was: SpeedConfig.off()) and once with the defaults (SpeedConfig()). It reports per
path and epoch:

  * train samples/s (CE warm-up and SelfMix epochs), scoring samples/s (the no-dropout
    pass over the train set plus the GMM), the test pass's seconds;
  * model FLOPs from the encoder's config and the real padded token counts of every
    forward (a training forward counts 3x: forward + backward), and MFU: achieved
    FLOP/s over the machine's measured dense-matmul peak (fp32 for the old path, bf16
    for the new one where the CPU has it);
  * detection AUROC and test accuracy at the last epoch, old vs new.

Then torch.profiler over a few SelfMix steps, one scoring pass and one GMM fit per path
splits the time into matrix multiplies, other tensor ops, tokenisation + padding, the
optimizer, the GMM and the rest (Python and framework overhead). Writes the section
`speed` of docs/BENCHMARKS.md (--no-doc: print only).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from selfmix_core.benchmark.doc import git_revision, machine_description, publish  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
NOISE = {"trec": ("asym", 0.4)}  # elsewhere sym 20%
MATMUL_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_addmm_activation",
              "aten::matmul", "aten::linear", "mkldnn::_linear_pointwise"}
RANGES = ("tokenise+pad", "optimizer", "gmm")
GOAL_SPEEDUP = 2.0


# ---- the machine's limit ----------------------------------------------------------------
def matmul_peak(dtype: torch.dtype, n: int = 1024, seconds: float = 1.5, device: str = "cpu") -> float:
    """Dense (n, n) @ (n, n) FLOP/s in `dtype` on `device` (this process's threads on a
    CPU): the best of repeated timings over about `seconds`."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    a, b = torch.randn(n, n, device=device).to(dtype), torch.randn(n, n, device=device).to(dtype)
    for _ in range(3):
        a @ b
    sync()
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        for _ in range(4):
            a @ b
        sync()
        best = max(best, 4 * 2 * n**3 / (time.perf_counter() - t))
    return best


# ---- model FLOPs --------------------------------------------------------------------------
def encoder_flops(cfg, batch: int, length: int) -> float:
    """Forward matmul FLOPs of a BERT-like encoder on a (batch, length) padded batch:
    per layer 2 B L (4 H^2 + 2 H I) for the projections and the feed-forward, plus
    4 B L^2 H for the attention scores and their weighted sum. Embeddings, norms and
    the small head are left out (well under 1% here)."""
    h, i, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    return layers * (2 * batch * length * (4 * h * h + 2 * h * i) + 4 * batch * length * length * h)


class FlopCounter:
    """Counts the encoder's forward FLOPs by stage ("train", "score", "test") with a
    forward pre-hook; a forward with gradients on counts 3x (forward + backward)."""

    def __init__(self, trainer):
        self.stage = "train"
        self.flops: dict[str, float] = {}
        self.tokens: dict[str, int] = {}
        self.real_tokens: dict[str, int] = {}
        cfg = trainer.model.encoder.config

        def hook(_module, args, kwargs):
            ids = kwargs.get("input_ids", args[0] if args else None)
            mask = kwargs.get("attention_mask")
            b, length = ids.shape
            mult = 3 if torch.is_grad_enabled() else 1
            self.flops[self.stage] = self.flops.get(self.stage, 0.0) + mult * encoder_flops(cfg, b, length)
            self.tokens[self.stage] = self.tokens.get(self.stage, 0) + b * length
            if mask is not None:
                self.real_tokens[self.stage] = self.real_tokens.get(self.stage, 0) + int(mask.sum())

        trainer.model.encoder.register_forward_pre_hook(hook, with_kwargs=True)
        real_score = trainer._score

        def score(texts, labels=None, **kwargs):
            self.stage = "score" if texts is trainer.train.texts else "test"
            try:
                return real_score(texts, labels, **kwargs)
            finally:
                self.stage = "train"

        trainer._score = score

    def take(self) -> tuple[dict, dict, dict]:
        out = (self.flops, self.tokens, self.real_tokens)
        self.flops, self.tokens, self.real_tokens = {}, {}, {}
        return out


# ---- one setting ------------------------------------------------------------------------------
def demo_train(n: int, kind: str, rate: float, seed: int):
    """(noisy TextDataset, noise info): the Data page's demo preset of n texts (stratified,
    seed 0) with `kind` noise at `rate` drawn by seed `seed`."""
    from selfmix_core.data import dataset_from_frame
    from selfmix_core.demo import demo_preset, load_demo_frame
    from selfmix_core.noise import noisy_dataset

    preset = demo_preset(load_demo_frame(), n=n, noise=kind, rate=rate, seed=0)
    ds = dataset_from_frame(preset["frame"], "text", "label", label_names=preset["label_names"], source="demo")
    return noisy_dataset(ds, kind, rate, np.random.default_rng(seed))


def load_setting(dataset: str, n: int, seed: int, with_test: bool = True):
    """(noisy train TextDataset, test or None, (noise kind, rate)): the harness's data
    subset (data seed 0) and noise (seed `seed`): 40% asymmetric on TREC, 20% symmetric elsewhere."""
    from selfmix_core.benchmark.harness import BenchSettings, load_bench_data, noisy_train

    kind, rate = NOISE.get(dataset, ("sym", 0.2))
    if dataset == "demo":  # the app's demo preset (no test set): `python -m selfmix_core.demo fetch` first
        return demo_train(n, kind, rate, seed)[0], None, (kind, rate)
    train, test = load_bench_data(DATA, dataset, BenchSettings(max_train_samples=n))
    noisy, _ = noisy_train(train, kind, rate, seed)
    return noisy, test if with_test else None, (kind, rate)


def make_trainers(dataset: str, n: int, max_length: int, epochs: int, seed: int, with_test: bool = True,
                  paths: tuple[str, ...] = ("old", "new"), count_flops: bool = True):
    """{path: (trainer, FlopCounter or None)} on the same data and pretrained weights, for the
    paths named ("old": every speed option off; "new": the defaults), with the noise, the
    train size and the test size."""
    from selfmix_core.config import ModelConfig, SpeedConfig, TrainConfig
    from selfmix_core.benchmark.methods.base import pretrained_factory
    from selfmix_core.trainer import SelfMixTrainer

    noisy, test, (kind, rate) = load_setting(dataset, n, seed, with_test)
    base = TrainConfig(epochs=max(epochs, 3), warmup_epochs=2, extra_warmup_epochs=0, seed=seed, device="cpu",
                       model=ModelConfig(max_length=max_length))
    factory, tokenizer = pretrained_factory(base.model)
    out = {}
    for path in paths:
        sp = {"old": SpeedConfig.off(), "new": SpeedConfig()}[path]
        t = SelfMixTrainer(base.replace(speed=sp), noisy, test, model=factory(noisy.num_classes, 0),
                           tokenizer=tokenizer)
        out[path] = (t, FlopCounter(t) if count_flops else None)
    return out, (kind, rate), len(noisy), len(test) if test is not None else 0


def run_setting(dataset, n, max_length, epochs, seed, peaks, with_test=True) -> dict:
    trainers, noise, n_train, n_test = make_trainers(dataset, n, max_length, epochs, seed, with_test)
    its = {p: t.run() for p, (t, _) in trainers.items()}
    rows = {"old": [], "new": []}
    for _ in range(epochs):
        for path in ("old", "new"):  # in turn, so that other load falls on both
            t, counter = trainers[path]
            t0 = time.perf_counter()
            r = next(its[path])
            wall = time.perf_counter() - t0
            flops, tokens, real = counter.take()
            peak = peaks["bf16"] if t._amp and "bf16" in peaks else peaks["fp32"]
            test_s = r.seconds - r.train_seconds - r.score_seconds
            rows[path].append({
                "epoch": r.epoch, "phase": r.phase, "wall": wall, "train_s": r.train_seconds,
                "score_s": r.score_seconds, "test_s": test_s, "samples": r.samples_trained,
                "train_sps": r.samples_trained / r.train_seconds, "score_sps": n_train / r.score_seconds,
                "train_mfu": flops.get("train", 0) / r.train_seconds / peak,
                "score_mfu": flops.get("score", 0) / r.score_seconds / peak,
                "pad_share": 1 - real.get("train", 0) / max(tokens.get("train", 1), 1),
                "auroc": r.detection.auroc if r.detection else None, "test_acc": r.test_accuracy,
                "n_test": r.n_test, "bf16": bool(t._amp), "peak": peak,
            })
            print(f"{dataset}-{n} L{max_length} seed {seed} {path} epoch {r.epoch} [{r.phase}] "
                  f"train {rows[path][-1]['train_sps']:.1f}/s score {rows[path][-1]['score_sps']:.1f}/s "
                  f"mfu {rows[path][-1]['train_mfu']:.1%} auroc {rows[path][-1]['auroc']:.3f} "
                  f"test {r.test_accuracy} (n={r.n_test})", flush=True)
    for it in its.values():
        it.close()
    prof = {p: profile_path(t, seed) for p, (t, _) in trainers.items()} if rows["old"][-1]["phase"] == "selfmix" else {}
    return {"dataset": dataset, "n": n_train, "n_test": n_test, "max_length": max_length, "seed": seed,
            "noise": noise, "rows": rows, "profile": prof}


# ---- where the time goes ------------------------------------------------------------------------
def profile_path(trainer, seed: int, steps: int = 4) -> dict:
    """torch.profiler over `steps` SelfMix steps, one scoring pass over the train set and one
    GMM fit; seconds per category (wall time of the whole block under "total")."""
    from torch.profiler import ProfilerActivity, profile, record_function

    from selfmix_core.trainer import TrainerCallback

    t = trainer

    def labelled(fn, name):
        def inner(*a, **kw):
            with record_function(name):
                return fn(*a, **kw)
        return inner

    t._encode = labelled(t._encode, "tokenise+pad")
    t._collate = labelled(t._collate, "tokenise+pad")
    t._select = labelled(t._select, "gmm")
    t.optimizer.step = labelled(t.optimizer.step, "optimizer")

    class StopAfter(TrainerCallback):
        def on_step_end(self, trainer, progress):
            if progress.step >= steps:
                trainer.control.stop()

    t.callbacks = [StopAfter()]
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng([seed, 99])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        w0 = time.perf_counter()
        t._train_selfmix_epoch(99, rng, gen)
        t.control._stop.clear()
        w1 = time.perf_counter()
        loss, _ = t._score(t.train.texts)
        w2 = time.perf_counter()
        mask = t.split.in_training
        t._select(loss[mask], t.split.labels[mask], np.random.default_rng(0), fit_mask=~t.split.in_validation[mask])
        w3 = time.perf_counter()
    out = {k: 0.0 for k in ("matmul", "other tensor ops") + RANGES}
    for e in prof.events():
        top, p = None, e
        while p is not None:
            if p.name in RANGES:
                top = p.name
            p = p.cpu_parent
        if e.name in RANGES and e.cpu_parent is None or top is not None:
            out[top or e.name] += e.self_cpu_time_total / 1e6
        elif e.name in MATMUL_OPS:
            out["matmul"] += e.self_cpu_time_total / 1e6
        elif e.name.startswith(("aten::", "mkldnn::", "autograd::", "AddmmBackward", "MmBackward")) or \
                "Backward" in e.name:
            out["other tensor ops"] += e.self_cpu_time_total / 1e6
    out["total"] = w3 - w0
    out["steps_s"], out["score_s"], out["gmm_s"] = w1 - w0, w2 - w1, w3 - w2
    out["rest (Python, framework)"] = max(0.0, out["total"] - sum(out[k] for k in ("matmul", "other tensor ops")
                                                                  + RANGES))
    return out


# ---- the report ---------------------------------------------------------------------------------
def _mean(rows, key, phase=None):
    v = [r[key] for r in rows if (phase is None or r["phase"] == phase) and r[key] is not None]
    return float(np.mean(v)) if v else None


def _acc(r, with_n=True) -> str:
    if r["test_acc"] is None:
        return "—"
    return f"{100 * r['test_acc']:.1f}" + (f" (n={r['n_test']:,})" if with_n else "")


def render(results, peaks, cmd, threads, revision, machine) -> str:
    """The section from the saved figures; `machine` is the one they were measured on (saved with them:
    --render-only on another machine must not describe that one)."""
    lines = ["## Speed: samples per second, MFU and where the time goes (issue #14)", "",
             f"`{cmd}`; revision {revision}; {machine}; load average at the start "
             f"{results[0]['load']:.1f}; the two paths ran epoch by epoch in turn, so that other load on the machine, "
             "if any, fell on both alike.", "",
             f"Dense matmul peak on {threads} thread{'s' if threads != 1 else ''}: fp32 {peaks['fp32'] / 1e9:.0f} "
             "GFLOP/s" + (f", bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s" if "bf16" in peaks else
                          ", no native bf16 on this CPU") + " (1024x1024 matrices, the best of repeats before "
             "and after the runs). "
             "**old** = every speed option off (the engine before issue #14, `SpeedConfig.off()`); **new** = "
             "the defaults (length-grouped batches, cached tokens, bf16 autocast where the CPU has it, "
             "inference-mode scoring in token-length order, fused Adam, a 2,000-text stratified test sample "
             "during training). MFU = encoder matmul FLOPs (real padded token counts; training forward x3) per second "
             "over the peak of the path's precision.", "",
             "| setting | seed | path | epoch | phase | train samples/s | train MFU | padding share | scoring samples/s "
             "| scoring MFU | test pass s | test acc | AUROC |",
             "|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for res in results:
        name = f"{res['dataset']}-{res['n']:,} L{res['max_length']}"
        for path in ("old", "new"):
            for r in res["rows"][path]:
                lines.append(f"| {name} | {res['seed']} | {path} | {r['epoch']} | {r['phase']} | {r['train_sps']:.1f} "
                             f"| {r['train_mfu']:.1%} | {r['pad_share']:.0%} | {r['score_sps']:.1f} "
                             f"| {r['score_mfu']:.1%} | {r['test_s']:.1f} | {_acc(r)} | {r['auroc']:.3f} |")
    lines += ["", "### Before and after, and the issue's goals", "",
              "| setting | seed | CE samples/s old → new | SelfMix samples/s old → new | scoring samples/s old → new "
              "| first epoch s old → new | last test acc old / new | last AUROC old / new |",
              "|---|---:|---|---|---|---|---|---|"]
    goals = []
    for res in results:
        name = f"{res['dataset']}-{res['n']:,} L{res['max_length']}"
        o, nw = res["rows"]["old"], res["rows"]["new"]
        ce = (_mean(o, "train_sps", "warmup"), _mean(nw, "train_sps", "warmup"))
        sm = (_mean(o, "train_sps", "selfmix"), _mean(nw, "train_sps", "selfmix"))
        sc = (_mean(o, "score_sps"), _mean(nw, "score_sps"))
        first = (o[0]["wall"], nw[0]["wall"])
        fmt = lambda p: "—" if p[0] is None else f"{p[0]:.1f} → {p[1]:.1f} ({p[1] / p[0]:.2f}x)"  # noqa: E731
        lines.append(f"| {name} | {res['seed']} | {fmt(ce)} | {fmt(sm)} | {fmt(sc)} | {first[0]:.1f} → {first[1]:.1f} "
                     f"| {_acc(o[-1], False)} / {_acc(nw[-1], False)} "
                     f"| {o[-1]['auroc']:.3f} / {nw[-1]['auroc']:.3f} |")
        if sm[0] is not None:
            goals.append((f"{name} seed {res['seed']}: SelfMix train samples/s at least {GOAL_SPEEDUP:g}x",
                           sm[1] / sm[0] >= GOAL_SPEEDUP, f"{sm[1] / sm[0]:.2f}x"))
        goals.append((f"{name} seed {res['seed']}: scoring pass at least {GOAL_SPEEDUP:g}x",
                      sc[1] / sc[0] >= GOAL_SPEEDUP, f"{sc[1] / sc[0]:.2f}x"))
        if res["max_length"] == 64 and res["n"] == 1000:
            goals.append((f"{name} seed {res['seed']}: first epoch under 20 s (demo-shaped: 1,000 texts, "
                          "max length 64)", first[1] < 20, f"{first[1]:.1f} s"))
    lines += ["", "One seed over a few epochs cannot show that accuracy and AUROC are unchanged (a different batch "
              "order alone moves a seed by more than 0.01): that goal is checked over seeds on the engine "
              "benchmark's setting in the section \"does the new path learn the same?\" below.",
              "", "| goal | met | measured |", "|---|---|---|"]
    lines += [f"| {g} | {'yes' if ok else '**no**'} | {m} |" for g, ok, m in goals]
    missed = [g for g, ok, _ in goals if not ok]
    lines += ["", f"{len(goals) - len(missed)} of {len(goals)} goals met" + (
        "; missed: " + "; ".join(missed) + "." if missed else ".")]
    prof = [(res, p, d) for res in results for p, d in res["profile"].items()]
    if prof:
        cats = ["matmul", "other tensor ops", "tokenise+pad", "optimizer", "gmm", "rest (Python, framework)"]
        lines += ["", "### Where the time goes (torch.profiler: 4 SelfMix steps, one scoring pass over the train "
                  "set, one GMM fit)", "",
                  "| setting | seed | path | total s | " + " | ".join(cats) + " |",
                  "|---|---:|---|---:|" + "---:|" * len(cats)]
        for res, path, d in prof:
            lines.append(f"| {res['dataset']}-{res['n']:,} L{res['max_length']} | {res['seed']} | {path} "
                         f"| {d['total']:.2f} | " + " | ".join(f"{d[c]:.2f} ({d[c] / d['total']:.0%})" for c in cats)
                         + " |")
        lines += ["", "Self CPU time per category on the main thread; 'rest' is the block's wall time not "
                  "inside any profiled op (Python, autograd bookkeeping, the profiler's own cost). "
                  "Ops inside tokenise+pad, the optimizer step or the GMM count there."]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--setting", action="append", default=None,
                   help="dataset:train texts:max length:epochs[:notest] (repeatable; default trec:1000:32:3)")
    p.add_argument("--seeds", default="0", help="comma list")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: physical cores)")
    p.add_argument("--no-doc", action="store_true")
    p.add_argument("--results", type=Path, default=ROOT / "runs" / "bench-speed.json",
                   help="where the figures are saved (and read back with --render-only)")
    p.add_argument("--render-only", action="store_true", help="redraw the section from --results, run nothing")
    a = p.parse_args(argv)
    if a.render_only:
        saved = json.loads(a.results.read_text())
        text = render(saved["results"], saved["peaks"], saved["command"], saved["threads"], saved["revision"],
                      saved["machine"])
        return publish("speed", text, write=not a.no_doc)
    from selfmix_core.speed import configure_threads, cpu_supports_bf16

    threads = configure_threads(a.threads)
    revision = git_revision()
    peaks = {"fp32": matmul_peak(torch.float32)}
    if cpu_supports_bf16():
        peaks["bf16"] = matmul_peak(torch.bfloat16)
    print({k: f"{v / 1e9:.0f} GFLOP/s" for k, v in peaks.items()}, flush=True)
    results = []
    for s in a.setting or ["trec:1000:32:3"]:
        dataset, n, length, epochs, *rest = s.split(":")
        for seed in [int(x) for x in a.seeds.split(",")]:
            load = os.getloadavg()[0]
            res = run_setting(dataset, int(n), int(length), int(epochs), seed, peaks, with_test=rest != ["notest"])
            res["load"] = load
            results.append(res)
    # The peak again after the runs: other work on the machine lowers a single measurement,
    # and an MFU against a depressed peak would flatter; the higher of the two stands.
    peaks["fp32"] = max(peaks["fp32"], matmul_peak(torch.float32))
    if "bf16" in peaks:
        peaks["bf16"] = max(peaks["bf16"], matmul_peak(torch.bfloat16))
    for res in results:  # MFU against the final peaks
        for rows in res["rows"].values():
            for r in rows:
                scale = r.pop("peak") / (peaks["bf16"] if r["bf16"] and "bf16" in peaks else peaks["fp32"])
                r["train_mfu"] *= scale
                r["score_mfu"] *= scale
    args = [x for x in (sys.argv[1:] if argv is None else argv) if x != "--no-doc"]
    cmd = "python bench/bench_speed.py " + shlex.join(args)
    a.results.parent.mkdir(parents=True, exist_ok=True)
    machine = machine_description(threads=threads)
    a.results.write_text(json.dumps({"command": cmd, "threads": threads, "revision": revision, "peaks": peaks,
                                     "machine": machine, "results": results}, indent=1))
    text = render(results, peaks, cmd, threads, revision, machine)
    return publish("speed", text, write=not a.no_doc)


if __name__ == "__main__":
    raise SystemExit(main())
