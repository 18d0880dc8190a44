"""Issue #14 item 4: the TREC full protocol with BERT-base in bf16 on one GPU, timed.

    python bench/gpu_trec_protocol.py --model /path/to/bert-base-uncased [--no-doc]

TREC's whole training set (5,452 questions, 40% asymmetric noise, seed 0), the test set
(500), 6 epochs (2 CE warm-up + 4 SelfMix), batch 32, lr 1e-5 (the paper's, for
BERT-base), max length 32, the paper's protocol of every sample trained on (no held-out
slice), the speed defaults (bf16 autocast on CUDA, length-grouped batches, cached tokens,
fused Adam). Reports the wall time of the whole protocol (model on the GPU to the last
report; loading the weights is timed apart), train samples/s per epoch, and MFU: encoder
matmul FLOPs (real padded token counts, training forward x3) per second against the GPU's
measured dense bf16 matmul peak (8192x8192) and against the nominal dense bf16 peak given
with --nominal-tflops (989 for an H100/H200 SXM). Goal: the protocol under 60 s on an
H100/H200-class GPU. Writes the section `speed-gpu` of docs/BENCHMARKS.md.

The model must be a local folder (the machine may have no network): a BERT-base saved
with save_pretrained (config.json, weights, tokenizer files).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from bench.bench_speed import DATA, FlopCounter, matmul_peak  # noqa: E402
from selfmix_core.benchmark.doc import git_revision, machine_description, publish  # noqa: E402

GOAL_SECONDS = 60.0


def main(argv=None) -> int:
    from selfmix_core.benchmark.harness import BenchSettings, load_bench_data, noisy_train
    from selfmix_core.config import ModelConfig, TrainConfig, ValidationConfig
    from selfmix_core.benchmark.methods.base import pretrained_factory
    from selfmix_core.trainer import SelfMixTrainer

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="local BERT-base folder")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--nominal-tflops", type=float, default=989.0, help="the GPU's nominal dense bf16 TFLOP/s")
    p.add_argument("--no-doc", action="store_true")
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA GPU here: this script is for a GPU machine", file=sys.stderr)
        return 2
    revision = git_revision()
    peak = matmul_peak(torch.bfloat16, n=8192, seconds=3.0, device="cuda")
    train, test = load_bench_data(DATA, "trec", BenchSettings())
    noisy, _ = noisy_train(train, "asym", 0.4, a.seed)
    config = TrainConfig(epochs=a.epochs, warmup_epochs=2, extra_warmup_epochs=0, lr=1e-5, seed=a.seed, device="cuda",
                         model=ModelConfig(model=a.model, max_length=32), validation=ValidationConfig(fraction=0.0))
    t_load = time.perf_counter()
    factory, tokenizer = pretrained_factory(config.model)
    model = factory(noisy.num_classes, 0)
    load_s = time.perf_counter() - t_load
    t0 = time.perf_counter()
    trainer = SelfMixTrainer(config, noisy, test, model=model, tokenizer=tokenizer)
    counter = FlopCounter(trainer)
    rows, total_flops = [], 0.0
    for r in trainer.run():
        torch.cuda.synchronize()
        flops, _, _ = counter.take()
        total_flops += sum(flops.values())
        rows.append((r, flops.get("train", 0.0)))
        print(f"epoch {r.epoch} [{r.phase}] {r.seconds:.1f} s, train {r.samples_trained / r.train_seconds:.0f}/s, "
              f"test {r.test_accuracy:.3f}, AUROC {r.detection.auroc:.3f}", flush=True)
    wall = time.perf_counter() - t0
    nominal = a.nominal_tflops * 1e12
    table = ["| epoch | phase | seconds | train samples/s | train MFU (measured peak) | train MFU (nominal) "
             "| test acc | AUROC |", "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r, f in rows:
        table.append(f"| {r.epoch} | {r.phase} | {r.seconds:.1f} | {r.samples_trained / r.train_seconds:.0f} "
                     f"| {f / r.train_seconds / peak:.1%} | {f / r.train_seconds / nominal:.1%} "
                     f"| {100 * r.test_accuracy:.1f} | {r.detection.auroc:.3f} |")
    met = "met" if wall < GOAL_SECONDS else "**missed**"
    cmd = "python bench/gpu_trec_protocol.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    text = (f"## Speed on a GPU: TREC's full protocol with BERT-base in bf16 (issue #14, item 4)\n\n`{cmd}`; "
            f"revision {revision}; {machine_description()}. {len(noisy):,} training texts, 40% asymmetric noise, "
            f"{a.epochs} epochs. Whole protocol {wall:.1f} s (goal under {GOAL_SECONDS:.0f} s: {met}; loading the "
            f"weights {load_s:.1f} s more); model FLOPs {total_flops / 1e15:.2f} PFLOP, "
            f"{total_flops / wall / 1e12:.1f} TFLOP/s over the whole protocol; measured dense bf16 matmul peak "
            f"{peak / 1e12:.0f} TFLOP/s, nominal {a.nominal_tflops:.0f}.\n\n" + "\n".join(table))
    return publish("speed-gpu", text, write=not a.no_doc)


if __name__ == "__main__":
    raise SystemExit(main())
