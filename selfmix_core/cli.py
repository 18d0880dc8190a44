"""Headless command line: `python -m selfmix_core train ...`.

Loads the data, optionally injects noise (the original labels then become the true
labels), trains with SelfMix or plain CE, prints one line per epoch under a progress
bar, and writes DIR/metrics.json and DIR/samples.csv after every epoch (so a stopped
run still leaves results). Bad input ends with exit status 2 and a one-paragraph
message, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from .memory import peak_rss_mb
from .records import (LABEL_COLUMNS, chosen_epoch, epoch_record, load_report, metrics_document,  # noqa: F401
                      issue_frame, samples_frame, save_report)

EXIT_BAD_INPUT = 2


class UsageError(ValueError):
    """Bad command-line input; main() turns it into exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m selfmix_core", description="SelfMix Studio, headless")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train SelfMix (or CE) on a labeled text file and flag likely label errors")
    d = t.add_argument_group("data")
    d.add_argument("--train", required=True, help="training file: .csv, .tsv, .jsonl or .parquet")
    d.add_argument("--test", help="optional held-out test file with correct labels, same columns")
    d.add_argument("--text-column", default="text", help="column holding the texts (default: text)")
    d.add_argument("--label-column", default="label",
                   help="column holding the given labels, names or integers (default: label)")
    d.add_argument("--true-label-column", default=None, help="optional column of known-correct labels (evaluation only)")
    d.add_argument("--max-train-samples", type=int, default=None, help="train on a seeded random subset of this size")
    n = t.add_argument_group("simulated noise")
    n.add_argument("--noise", choices=["none", "sym", "asym", "idn"], default="none",
                   help="flip labels to evaluate on clean data: sym (uniform), asym (y -> y+1 mod K), "
                        "idn (instance-dependent); the original labels become the true labels")
    n.add_argument("--noise-rate", type=float, default=0.0, help="share of labels to flip, e.g. 0.4")
    m = t.add_argument_group("model and training")
    m.add_argument("--method", choices=["selfmix", "ce"], default="selfmix",
                   help="selfmix, or ce (plain fine-tuning, the baseline)")
    m.add_argument("--model", default=None, help="local folder or Hugging Face id (default: the bundled MiniLM-L6)")
    m.add_argument("--pooling", choices=["cls", "mean", "auto"], default="cls",
                   help="sentence embedding: the [CLS] token (paper) or the mean of the tokens")
    m.add_argument("--epochs", type=int, default=6, help="total epochs, warm-up included (paper: 6)")
    m.add_argument("--warmup-epochs", type=int, default=2, help="cross-entropy epochs before SelfMix (paper: 2)")
    m.add_argument("--warmup-samples", type=int, default=None, help="warm up on this many samples instead of epochs")
    m.add_argument("--extra-warmup-epochs", type=int, default=4,
                   help="up to this many more warm-up epochs while the held-out accuracy still improves (default 4)")
    m.add_argument("--val-fraction", type=float, default=0.1,
                   help="share of the training set held out (stratified, given labels) to decide the hand-over "
                        "and the recommended epoch without clean labels; 0 = train on everything, fixed warm-up "
                        "(the paper's protocol)")
    m.add_argument("--handover-from-best", action="store_true",
                   help="when the extended warm-up ends past its held-out peak, start SelfMix from the peak "
                        "epoch's weights and split")
    m.add_argument("--max-length", type=int, default=64, help="tokens per text after truncation")
    m.add_argument("--batch-size", type=int, default=32, help="samples per step (paper: 32)")
    m.add_argument("--lr", type=float, default=5e-5, help="Adam learning rate (5e-5 suits MiniLM-L6)")
    m.add_argument("--lambda-p", type=float, default=0.2, help="weight of the pseudo-label loss L_P (paper: 0.2)")
    m.add_argument("--lambda-r", type=float, default=0.3, help="weight of the R-Drop loss L_R (paper: 0.3)")
    m.add_argument("--tau", type=float, default=0.5,
                   help="clean-probability threshold: below it a sample is flagged and goes to U")
    m.add_argument("--temperature", type=float, default=0.5, help="sharpening temperature of U's soft labels")
    m.add_argument("--alpha", type=float, default=0.75, help="mixup Beta(alpha, alpha) parameter")
    m.add_argument("--class-reg", action="store_true", help="class-regularised loss for the GMM (instance-dependent noise)")
    m.add_argument("--gmm-max-iter", type=int, default=10, help="EM iterations of the GMM (authors' code: 10)")
    m.add_argument("--gmm-tol", type=float, default=1e-2, help="EM tolerance of the GMM (authors' code: 1e-2)")
    m.add_argument("--seed", type=int, default=0,
                   help="fixes the subset, noise, head initialisation, data order, dropout and mixup")
    m.add_argument("--device", default="auto", help="auto, cpu or cuda")
    r = t.add_argument_group("reference-code deviations (off by default; for comparison only)")
    r.add_argument("--ref-softmax-selection", action="store_true",
                   help="selection loss on softmax(probabilities): softmax applied twice")
    r.add_argument("--ref-variance-norm", action="store_true",
                   help="class-regularised loss divided by the variance, not the std")
    r.add_argument("--ref-min-class-pseudo", action="store_true",
                   help="pseudo-label loss on the LEAST likely class, not the argmax")
    f = t.add_argument_group("the earlier engine's shortcuts (off by default = the paper; for comparison)")
    f.add_argument("--fast-soft-targets", action="store_true",
                   help="U's soft labels from the two dropout passes instead of a no-dropout pass")
    f.add_argument("--fast-kl-mean", action="store_true", help="R-Drop KL averaged over U instead of summed (Eq. 16)")
    f.add_argument("--fast-single-pass-pseudo", action="store_true",
                   help="pseudo-label loss from the first dropout pass only, not both")
    f.add_argument("--fast-epoch-over-all", action="store_true",
                   help="a SelfMix epoch of ceil(n / batch) steps instead of one pass over X")
    s = t.add_argument_group("speed (all on by default; docs/BENCHMARKS.md, section speed)")
    s.add_argument("--no-group-by-length", action="store_true",
                   help="batches in plain shuffled order instead of grouped by token length within shuffled chunks")
    s.add_argument("--no-group-selfmix", action="store_true",
                   help="SelfMix epochs draw their batches at random even with length grouping (EmbMix's partners)")
    s.add_argument("--no-cache-tokens", action="store_true", help="tokenise every batch instead of once per run")
    s.add_argument("--no-bf16", action="store_true",
                   help="fp32 on the CPU even where it computes bf16 natively (AVX512-BF16/AMX); CUDA keeps bf16")
    s.add_argument("--no-fast-scoring", action="store_true",
                   help="scoring and test passes under no_grad in character-length order (the old pass)")
    s.add_argument("--no-fused-adam", action="store_true", help="Adam's loop of element-wise ops, not its fused kernel")
    s.add_argument("--provisional-every", type=float, default=0.0,
                   help="during the first epoch, print a rough ranking of the samples trained so far every this "
                        "fraction of it, e.g. 0.5 (default 0: off)")
    s.add_argument("--test-sample", type=int, default=2000,
                   help="during training, evaluate on a fixed stratified sample of this many test texts; "
                        "the last epoch uses the whole test set (0: the whole set every epoch)")
    s.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: the physical cores this process may use)")
    o = t.add_argument_group("output")
    o.add_argument("--out", required=True, help="output folder")
    o.add_argument("--resume", action="store_true", help="continue from the checkpoint in OUT/checkpoints")
    o.add_argument("--flags-epoch", default="recommended", type=_flags_epoch,
                   help="whose flags samples.csv holds: recommended (default: the epoch the held-out slice "
                        "prefers), last, or an epoch number")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    o.add_argument("--plain-numeric-labels", action="store_true",
                   help="in samples.csv, write label columns that hold only numbers (such as -1) as they are, "
                        "without the leading ' that keeps spreadsheets from reading cells as formulas")
    from .benchmark.harness import add_parser as add_bench_parser

    add_bench_parser(sub)
    return p


def _flags_epoch(value: str) -> str | int:
    if value in ("recommended", "last"):
        return value
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'recommended', 'last' or an epoch number, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"epochs are numbered from 1, got {n}")
    return n


def config_from_args(a: argparse.Namespace):
    from .config import (FastChoices, LossWeights, ModelConfig, ReferenceDeviations, SelectionConfig, SpeedConfig,
                         TrainConfig, ValidationConfig)

    return TrainConfig(
        method=a.method,
        epochs=a.epochs,
        warmup_epochs=a.warmup_epochs,
        warmup_samples=a.warmup_samples,
        extra_warmup_epochs=a.extra_warmup_epochs,
        batch_size=a.batch_size,
        lr=a.lr,
        temperature=a.temperature,
        alpha=a.alpha,
        seed=a.seed,
        device=a.device,
        model=ModelConfig(model=a.model, pooling=a.pooling, max_length=a.max_length),
        selection=SelectionConfig(tau=a.tau, class_reg=a.class_reg, gmm_max_iter=a.gmm_max_iter, gmm_tol=a.gmm_tol),
        loss=LossWeights(lambda_p=a.lambda_p, lambda_r=a.lambda_r),
        reference=ReferenceDeviations(
            softmax_before_ce=a.ref_softmax_selection,
            variance_norm=a.ref_variance_norm,
            min_class_pseudo=a.ref_min_class_pseudo,
        ),
        fast=FastChoices(soft_targets_from_rdrop=a.fast_soft_targets, kl_mean=a.fast_kl_mean,
                         single_pass_pseudo=a.fast_single_pass_pseudo, epoch_over_all=a.fast_epoch_over_all),
        validation=ValidationConfig(fraction=a.val_fraction, handover_from_best=a.handover_from_best),
        speed=SpeedConfig(group_by_length=not a.no_group_by_length, group_selfmix=not a.no_group_selfmix,
                          cache_tokens=not a.no_cache_tokens,
                          bf16_cpu=not a.no_bf16, fast_scoring=not a.no_fast_scoring,
                          fused_adam=not a.no_fused_adam, provisional_every=a.provisional_every,
                          test_sample=a.test_sample),
    )


# TrainConfig's fields as the options that set them, so that a config error names the
# option the person typed ("--lambda-p must be ...", not "lambda_p must be ...").
_OPTION_OF_FIELD = {
    "max_length": "--max-length", "lambda_p": "--lambda-p", "lambda_r": "--lambda-r",
    "warmup_epochs": "--warmup-epochs", "warmup_samples": "--warmup-samples",
    "extra_warmup_epochs": "--extra-warmup-epochs", "batch_size": "--batch-size",
    "epochs": "--epochs", "lr": "--lr", "tau": "--tau", "temperature": "--temperature",
    "alpha": "--alpha", "seed": "--seed", "device": "--device", "val_fraction": "--val-fraction",
    "gmm_max_iter": "--gmm-max-iter", "gmm_tol": "--gmm-tol", "test_sample": "--test-sample",
    "provisional_every": "--provisional-every",
}


def checked_config(a: argparse.Namespace):
    """config_from_args, with a validation error worded in terms of the options."""
    import re

    if a.threads is not None and a.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {a.threads}")
    try:
        return config_from_args(a)
    except ValueError as exc:
        fields = "|".join(sorted(_OPTION_OF_FIELD, key=len, reverse=True))
        message = re.sub(rf"(?<![\w-])({fields})(?![\w-])", lambda m: _OPTION_OF_FIELD[m.group(1)], str(exc))
        raise UsageError(message) from None


def prepare_data(a: argparse.Namespace):
    """Load train/test, subset, inject noise. Returns (train, test, noise_info)."""
    import numpy as np

    from .data import load_dataset
    from .noise import noisy_dataset

    if a.noise != "none" and not 0.0 < a.noise_rate < 1.0:
        raise UsageError(f"--noise {a.noise} needs --noise-rate strictly between 0 and 1, got {a.noise_rate}")
    if a.noise == "none" and a.noise_rate != 0.0:
        raise UsageError(f"--noise-rate {a.noise_rate} does nothing without --noise; add --noise sym, asym or "
                         "idn to flip that share of the labels, or leave --noise-rate out")
    train = load_dataset(a.train, a.text_column, a.label_column, a.true_label_column)
    test = None
    if a.test:
        test = load_dataset(a.test, a.text_column, a.label_column, label_names=train.label_names)
    rng = np.random.default_rng(a.seed)
    if a.max_train_samples is not None:
        if a.max_train_samples < 2:
            raise UsageError("--max-train-samples must be at least 2")
        if a.max_train_samples < len(train):
            idx = np.sort(rng.choice(len(train), size=a.max_train_samples, replace=False))
            train = train.subset(idx)
    noise_info = None
    if a.noise != "none":
        train, noisy = noisy_dataset(train, a.noise, a.noise_rate, rng)
        noise_info = {"kind": a.noise, "rate_requested": a.noise_rate, "rate_realised": noisy.rate,
                      "transition": noisy.transition.round(4).tolist()}
    return train, test, noise_info


def epoch_line(r) -> str:
    parts = [f"epoch {r.epoch} [{r.phase}]"]
    parts.append(" ".join(f"{k}={v:.4f}" for k, v in r.losses.items()))
    if r.test_accuracy is not None:
        parts.append(f"test_acc={r.test_accuracy:.4f}")
    if r.detection is not None and r.detection.auroc is not None:
        parts.append(f"det_auroc={r.detection.auroc:.3f} det_f1={r.detection.f1:.3f}")
    if r.val_accuracy is not None:
        parts.append(f"heldout_acc={r.val_accuracy:.4f}")
    parts.append(f"|X|={r.n_clean} |U|={r.n_noisy}")
    if r.gmm is not None:
        parts.append(f"sep={r.gmm.separation:.2f}")
    parts.append(f"{r.seconds:.1f}s")
    return "  ".join(parts)


def cmd_train(a: argparse.Namespace) -> int:
    """`train`. Under torchrun (WORLD_SIZE > 1) every process trains its share of each
    batch (selfmix_core/distributed.py); rank 0 alone prints and writes the outputs."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:
        return _train(a)
    import torch.distributed

    from .distributed import init_from_env

    ctx, device = init_from_env(a.device)
    a.device = device
    try:
        return _train(a, ctx)
    finally:
        torch.distributed.destroy_process_group()


def _train(a: argparse.Namespace, ctx=None) -> int:
    from .atomic import atomic_write_text
    from .export import write_export

    main_rank = ctx is None or ctx.is_main
    if not main_rank:
        a.no_progress = True
    say = print if main_rank else (lambda *args, **kw: None)
    config = checked_config(a)
    train, test, noise_info = prepare_data(a)
    for ds in (train, test) if test is not None else (train,):
        for w in ds.warnings:  # accepted, but worth knowing before waiting for a run
            say(f"warning: {ds.source}: {w}", file=sys.stderr, flush=True)
    out = Path(a.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot use --out {a.out!r} as the output folder: {exc.strerror or exc}; "
                         "pass a folder path that can be created and written") from exc
    # torch loads only now, so bad data and arguments are reported without waiting for it.
    from .speed import configure_threads
    from .trainer import SelfMixTrainer, TrainerCallback, TrainerControl

    configure_threads(a.threads)

    control = TrainerControl()

    class Progress(TrainerCallback):
        bar = None

        def on_epoch_begin(self, trainer, epoch, phase):
            if not a.no_progress:
                from tqdm import tqdm

                self.bar = tqdm(total=None, desc=f"epoch {epoch} {phase}", unit="step", leave=False, file=sys.stderr)

        def on_step_end(self, trainer, p):
            if self.bar is not None:
                self.bar.total = p.steps_in_epoch
                self.bar.update(p.step - self.bar.n)

        def on_epoch_end(self, trainer, report):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

        def on_provisional(self, trainer, f):
            flagged = int((f.clean_prob < trainer.config.selection.tau).sum())
            auroc = "" if f.auroc is None else f", detection AUROC {f.auroc:.3f}"
            say(f"provisional flags after {f.fraction:.0%} of epoch {f.epoch} ({f.seconds:.1f} s): {flagged} of "
                f"{f.samples_seen} samples trained so far look mislabeled{auroc} (rough; the epoch's report follows)",
                flush=True)

        on_train_end = lambda self, trainer, stopped: self.bar.close() if self.bar is not None else None  # noqa: E731

    t_start = time.perf_counter()
    trainer = SelfMixTrainer(config, train, test, callbacks=[Progress()], control=control,
                             checkpoint_dir=out / "checkpoints", resume=a.resume, dist=ctx)
    where = trainer.device_name + (f" x {ctx.world_size} processes" if ctx is not None else "")
    say(f"training {config.method} on {len(train)} samples, {train.num_classes} classes, "
        f"{where}" + (f", noise {noise_info['kind']} {noise_info['rate_realised']:.3f}" if noise_info else ""),
        flush=True)
    records_path = out / "epochs.jsonl"
    records: list[dict] = []
    if a.resume and records_path.is_file():
        records = [json.loads(line) for line in records_path.read_text().splitlines() if line.strip()]
        records = [r for r in records if r["epoch"] <= trainer.state.epochs_done]
    reports_dir = out / "reports"
    last = trainer.resumed_report
    if last is not None and not any(r["epoch"] == last.epoch for r in records):
        records.append(epoch_record(last))  # killed after the checkpoint, before recording it
        if main_rank:
            save_report(reports_dir, last)
    issues_of: dict = {}  # samples.csv's near-duplicate / outlier columns, computed once per flags epoch
    try:
        for report in trainer.run():
            last = report
            records.append(epoch_record(report))
            if not main_rank:
                continue
            save_report(reports_dir, report)
            print(epoch_line(report), flush=True)
            for w in report.warnings:
                print(f"  warning: {w}", flush=True)
            if report.fallback:
                print(f"  fallback: {report.fallback}", flush=True)
            atomic_write_text(records_path, "".join(json.dumps(r) + "\n" for r in records))
            extra = {
                "device": trainer.device_name,
                "processes": ctx.world_size if ctx is not None else 1,
                "n_train": len(train),
                "n_test": len(test) if test is not None else None,
                "label_names": list(train.label_names),
                "noise": noise_info,
                "wall_seconds": time.perf_counter() - t_start,
                "peak_rss_mb": peak_rss_mb(),
            }
            flags_epoch = chosen_epoch(a.flags_epoch, records)
            try:
                flags = report if flags_epoch == report.epoch else load_report(reports_dir, flags_epoch)
            except OSError:  # a run resumed from before reports/ was kept: that epoch is gone
                flags = report
            atomic_write_text(out / "metrics.json",
                              json.dumps(metrics_document(config.method, config, records, flags, extra), indent=2))
            if issues_of.get("epoch") != flags.epoch:
                issues_of.update(epoch=flags.epoch, frame=issue_frame(train, flags))  # once per flags epoch
            samples = samples_frame(train, flags, issues_of["frame"])
            plain = [c for c in LABEL_COLUMNS if c in samples.columns] if a.plain_numeric_labels else []
            write_export(samples, out / "samples.csv", "csv", plain_numeric_columns=plain)
    except KeyboardInterrupt:
        control.stop()
        print("interrupted: the last finished epoch's checkpoint is in "
              f"{out / 'checkpoints'}; rerun with --resume to continue", file=sys.stderr)
        return 130
    if last is None and not records:
        say("no epoch finished", file=sys.stderr)
        return 1
    if isinstance(a.flags_epoch, int) and a.flags_epoch > records[-1]["epoch"]:
        say(f"warning: --flags-epoch {a.flags_epoch} is beyond the last epoch ({records[-1]['epoch']}); "
            "samples.csv holds the last epoch's flags", file=sys.stderr)
    rec = records[-1].get("recommended_epoch")
    if rec is not None:
        say(f"recommended epoch: {rec} ({records[-1].get('recommendation')})", flush=True)
    say(f"wrote {out / 'metrics.json'} and {out / 'samples.csv'} "
        f"(flags of epoch {chosen_epoch(a.flags_epoch, records)})", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    a = parser.parse_args(argv)
    try:
        if a.command == "train":
            return cmd_train(a)
        if a.command == "bench":
            from .benchmark.harness import cmd_bench

            return cmd_bench(a, argv)  # argv None: the command line (sys.argv)
    # UsageError, DataValidationError, ModelLoadError and config validation errors are
    # all ValueErrors. (Not importing ModelLoadError here keeps torch out of the way of
    # a bad-data message.)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FileNotFoundError as exc:
        print(f"error: file not found: {exc.filename or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:  # unreadable input, unwritable output (permissions, a file where a folder is needed)
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # before training started (cmd_train handles it during training)
        print("interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("error: out of memory; use --max-train-samples, a smaller --batch-size or --max-length", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0
