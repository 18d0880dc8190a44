"""The benchmark harness: dataset x noise x rate x method x seed -> result cells -> tables.

This module's one job: run the paper's comparison (Tables 3, 4, 5 plus detection
quality) with our own code, resumably; `render` draws the tables from the cells.

    python -m selfmix_core bench --datasets trec,agnews --noise asym:0.4,idn:0.4 \
        --methods ce,selfmix --seeds 0,1,2 --max-train-samples 2000 --max-test-samples 1000 \
        --max-length 32 --epochs 6 --threads 1 --out bench_runs/main

Every (dataset, noise, rate, method, seed) is one CELL, written atomically to
OUT/cells/<dataset>-<noise>-<rate>-<method>-<seed>.json when it finishes. A cell whose
file exists is never run again, so an interrupted or extended grid resumes where it
stopped. The settings that are not part of the grid (subset sizes, epochs, length,
learning rate, model, ...) are fixed per OUT folder in OUT/bench.json: a later run with
other settings into the same folder is refused instead of mixing results.
Every invocation is appended to OUT/runs.jsonl (command, wall time, cells run).
After running, all cells in OUT are rendered into one section of docs/BENCHMARKS.md
(via selfmix_core.benchmark.doc.update_section), next to the paper's numbers.

Data: a training subset (`--max-train-samples`) and test subset (`--max-test-samples`)
are drawn ONCE per dataset with a fixed data seed, so every method and seed sees the
same texts; noise is injected per seed (np.random.default_rng([seed, 100])), so all
methods of one seed see the same noisy labels (paired comparison).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..memory import peak_rss_mb, reset_peak_memory

CELL_FORMAT = 1
NOISE_KINDS = ("none", "sym", "asym", "idn")
DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[3] / "shared" / "data"

# Known datasets: folder name under the data root -> (train file, test file). Any other
# name is a folder holding train.csv and test.csv (label,text).
DATASETS = {
    "trec": ("train.csv", "test.csv"),
    "agnews": ("train_partial_5k.csv", "test.csv"),
    "imdb": ("train.csv", "test.csv"),
    "banking77": ("train.csv", "test.csv"),
}
# (text column, label column) where a dataset is not `label,text`.
COLUMNS = {"banking77": ("text", "category")}

# (lambda_p, lambda_r) per (noise, dataset): the paper's Tables 3 and 4 headers.
PAPER_LAMBDAS = {("asym", "imdb"): (0.1, 0.5), ("idn", None): (0.0, 0.3), (None, None): (0.2, 0.3)}


def paper_lambdas(noise: str, dataset: str) -> tuple[float, float]:
    for key in ((noise, dataset), (noise, None), (None, None)):
        if key in PAPER_LAMBDAS:
            return PAPER_LAMBDAS[key]
    raise AssertionError("unreachable")


# ---- grid and settings -------------------------------------------------------------------


def _speed_off_fields(spec: str) -> list[str]:
    """The SpeedConfig switches named in a comma list; ValueError for anything else."""
    from ..config import SpeedConfig

    switches = sorted(f.name for f in dataclasses.fields(SpeedConfig) if f.type in (bool, "bool"))
    names = [x.strip() for x in spec.split(",") if x.strip()]
    bad = [x for x in names if x not in switches]
    if bad:
        raise ValueError(f"speed_off: unknown option(s) {', '.join(bad)}; the switches are {', '.join(switches)}")
    return names


@dataclass(frozen=True)
class BenchSettings:
    """Everything but the grid; fixed per output folder.

    max_train_samples / max_test_samples: seeded random subsets (None = all rows).
    epochs, warmup_epochs: total epochs and warm-up (also the baselines' schedule knee:
        Co-Teaching+'s init epoch, NM-Net's mixture fit, CORES2's sieve start;
        Co-Teaching's T_k is its own option, 4 as in the authors' script).
    cv_folds, cv_epochs: Confident Learning's K folds and epochs per fold (5 and 3, the
        authors' script). data_seed: draws the subsets.
    speed: run the cells with config.SpeedConfig's options (length-grouped batches, cached
        tokens, bf16 where the CPU has it, ...). Off by default and in every folder made
        before it existed: their cells ran without them, and a folder's cells must stay
        comparable (bf16 and the batch order change the numbers).
    speed_off: with speed, SpeedConfig options turned off (comma list of its boolean field
        names, e.g. "bf16_cpu" or "group_by_length,bf16_cpu"): what each option changes,
        measured one at a time.
    """

    max_train_samples: int | None = None
    max_test_samples: int | None = None
    max_length: int = 32
    epochs: int = 6
    warmup_epochs: int = 2
    lr: float = 5e-5
    batch_size: int = 32
    model: str | None = None
    cv_folds: int = 5
    cv_epochs: int = 3
    data_seed: int = 0
    pooling: str = "cls"
    speed: bool = False
    speed_off: str = ""

    def __post_init__(self) -> None:
        _speed_off_fields(self.speed_off)
        if self.speed_off and not self.speed:
            raise ValueError("speed_off needs speed: it turns options of the speed path off")
        for name in ("max_train_samples", "max_test_samples"):
            v = getattr(self, name)
            if v is not None and v < 2:
                raise ValueError(f"{name} must be at least 2 (or unset), got {v}")
        if self.cv_folds < 2:
            raise ValueError(f"cv_folds must be >= 2, got {self.cv_folds}")
        if self.cv_epochs < 1:
            raise ValueError(f"cv_epochs must be >= 1, got {self.cv_epochs}")
        if self.warmup_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) must be smaller than epochs ({self.epochs})")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Cell:
    dataset: str
    noise: str
    rate: float
    method: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.dataset}-{self.noise}-{self.rate:g}-{self.method}-{self.seed}"

    @property
    def setting(self) -> tuple[str, str, float]:
        return (self.dataset, self.noise, self.rate)


def parse_noise(spec: str) -> list[tuple[str, float]]:
    """"asym:0.2,idn:0.4,none" -> [("asym", 0.2), ("idn", 0.4), ("none", 0.0)]."""
    out = []
    for item in [s.strip() for s in spec.split(",") if s.strip()]:
        kind, _, rate = item.partition(":")
        if kind not in NOISE_KINDS:
            raise ValueError(f"noise kind must be one of {NOISE_KINDS}, got {kind!r} in {item!r}")
        if kind == "none":
            out.append(("none", 0.0))
            continue
        try:
            r = float(rate)
        except ValueError:
            raise ValueError(f"noise {item!r} needs a rate, e.g. {kind}:0.4") from None
        if not 0.0 < r < 1.0:
            raise ValueError(f"noise rate must be strictly between 0 and 1, got {item!r}")
        out.append((kind, r))
    if not out:
        raise ValueError("no noise settings given (e.g. --noise asym:0.4)")
    return out


def parse_methods(spec: str) -> list[str]:
    """Comma list of method names or groups (all, paper, baselines, ablations, reference)."""
    from .methods import GROUPS, METHODS

    out: list[str] = []
    for item in [s.strip() for s in spec.split(",") if s.strip()]:
        names = GROUPS.get(item, (item,))
        for n in names:
            if n not in METHODS:
                raise ValueError(f"unknown method {n!r}; choose from {', '.join(METHODS)} or a group "
                                 f"({', '.join(GROUPS)})")
            if n not in out:
                out.append(n)
    if not out:
        raise ValueError("no methods given")
    return out


def parse_ints(spec: str, what: str) -> list[int]:
    try:
        out = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, got {spec!r}") from None
    if not out:
        raise ValueError(f"no {what} given")
    return out


def grid(datasets: Sequence[str], noises: Sequence[tuple[str, float]], methods: Sequence[str],
         seeds: Sequence[int]) -> list[Cell]:
    """Cells in run order: dataset, noise, seed, method (one seed of every method first)."""
    return [Cell(d, k, r, m, s) for d in datasets for (k, r) in noises for s in seeds for m in methods]


# ---- data --------------------------------------------------------------------------------


def load_bench_data(root: str | Path, dataset: str, settings: BenchSettings):
    """(train, test) TextDatasets of `dataset` under `root`, subset with the fixed data seed."""
    from ..data import load_dataset

    folder = Path(root) / dataset
    train_file, test_file = DATASETS.get(dataset, ("train.csv", "test.csv"))
    if not (folder / train_file).is_file():
        raise ValueError(f"dataset {dataset!r}: {folder / train_file} does not exist (is --data-root right?)")
    text_col, label_col = COLUMNS.get(dataset, ("text", "label"))
    train = load_dataset(folder / train_file, text_col, label_col)
    test = (load_dataset(folder / test_file, text_col, label_col, label_names=train.label_names)
            if (folder / test_file).is_file() else None)
    if settings.max_train_samples is not None and settings.max_train_samples < len(train):
        rng = np.random.default_rng([settings.data_seed, 0])
        train = train.subset(np.sort(rng.choice(len(train), settings.max_train_samples, replace=False)))
    if test is not None and settings.max_test_samples is not None and settings.max_test_samples < len(test):
        rng = np.random.default_rng([settings.data_seed, 1])
        test = test.subset(np.sort(rng.choice(len(test), settings.max_test_samples, replace=False)))
    return train, test


def noisy_train(train, noise: str, rate: float, seed: int):
    """(noisy copy of train, noise info dict). Noise drawn from default_rng([seed, 100])."""
    from ..noise import noisy_dataset

    if noise == "none":
        return train.with_labels(train.labels.copy(), true_labels=train.labels.copy()), {"kind": "none", "rate": 0.0}
    ds, info = noisy_dataset(train, noise, rate, np.random.default_rng([seed, 100]))
    return ds, {"kind": noise, "rate_requested": rate, "rate_realised": info.rate,
                "transition": info.transition.round(4).tolist()}


def cell_config(cell: Cell, settings: BenchSettings, device: str):
    """The TrainConfig of a cell: the paper's per-setting lambdas; class-regularised GMM under idn;
    the paper's protocol of every sample trained on and a fixed warm-up (the method's
    `configure` turns on what it needs, e.g. selfmix's held-out slice)."""
    from ..config import LossWeights, ModelConfig, SelectionConfig, SpeedConfig, TrainConfig, ValidationConfig

    lp, lr_ = paper_lambdas(cell.noise, cell.dataset)
    return TrainConfig(
        method="selfmix", epochs=settings.epochs, warmup_epochs=settings.warmup_epochs,
        batch_size=settings.batch_size, lr=settings.lr, seed=cell.seed, device=device,
        model=ModelConfig(model=settings.model, max_length=settings.max_length, pooling=settings.pooling),
        selection=SelectionConfig(class_reg=cell.noise == "idn"),
        loss=LossWeights(lambda_p=lp, lambda_r=lr_),
        validation=ValidationConfig(fraction=0.0), extra_warmup_epochs=0,
        speed=(SpeedConfig(**{f: False for f in _speed_off_fields(settings.speed_off)}) if settings.speed
               else SpeedConfig.off()),
    )


# ---- measuring ------------------------------------------------------------------------------


def epoch_row(report, train) -> dict:
    """records.epoch_record plus how far the model has memorised the flipped labels.

    memorised: share of flipped training samples predicted as their (wrong) given label;
    corrected: share predicted as their true label (None without true labels/flips).
    """
    from ..records import epoch_record

    row = epoch_record(report)
    row["memorised"] = row["corrected"] = None
    if train.true_labels is not None:
        flipped = np.asarray(train.labels) != np.asarray(train.true_labels)
        if flipped.any():
            pred = report.predicted_label[flipped]
            row["memorised"] = float((pred == np.asarray(train.labels)[flipped]).mean())
            row["corrected"] = float((pred == np.asarray(train.true_labels)[flipped]).mean())
    return row


def run_cell(cell: Cell, settings: BenchSettings, train, test, noise_info: dict, model_factory, tokenizer,
             device: str = "auto", method_options: dict | None = None,
             log: Callable[[str], None] | None = None) -> dict:
    """Run one cell and return its result document (not yet written); `log` gets one line per epoch."""
    from .methods import get_method

    options = dict(method_options or {})
    if cell.method == "cl":
        options.setdefault("cv_folds", settings.cv_folds)
        options.setdefault("cv_epochs", settings.cv_epochs)
    method = get_method(cell.method, **options)
    config = cell_config(cell, settings, device)
    reset_ok = reset_peak_memory()
    t0 = time.perf_counter()
    rows = []
    for report in method.run(train, test, config, model_factory, tokenizer, noise_rate=cell.rate):
        rows.append(epoch_row(report, train))
        if log is not None:
            r = rows[-1]
            log(f"    epoch {r['epoch']} [{r['phase']}] test_acc={r['test_accuracy']:.4f} "
                f"memorised={r['memorised'] if r['memorised'] is None else round(r['memorised'], 3)} "
                f"det_auroc={r['detection_auroc'] if r['detection_auroc'] is None else round(r['detection_auroc'], 3)} "
                f"{r['seconds']:.1f}s")
    wall = time.perf_counter() - t0
    accs = [r["test_accuracy"] for r in rows if r["test_accuracy"] is not None]
    det_keys = ("detection_auroc", "detection_precision", "detection_recall", "detection_f1")
    import torch

    return {
        "format": CELL_FORMAT,
        "key": cell.key,
        "cell": dataclasses.asdict(cell),
        "settings": settings.to_dict(),
        "method": {"name": method.name, "summary": method.summary, "paper": method.paper, "flags": method.flags},
        "config": (method.ran_config or config).to_dict(),
        "noise": noise_info,
        "n_train": len(train),
        "n_test": len(test) if test is not None else None,
        "epochs": rows,
        "best_test_accuracy": max(accs) if accs else None,
        "best_epoch": int(np.argmax(accs)) + 1 if accs else None,
        "last_test_accuracy": accs[-1] if accs else None,
        "detection_last": {k.replace("detection_", ""): rows[-1][k] for k in det_keys} if method.flags else None,
        **_recommended(rows, det_keys if method.flags else ()),
        "extras": method.extras,
        "wall_seconds": wall,
        "seconds_per_epoch": float(np.mean([r["seconds"] for r in rows])),
        "train_seconds_per_epoch": float(np.mean([r["train_seconds"] for r in rows])),
        "peak_rss_mb": peak_rss_mb(since_reset=reset_ok),
        "peak_rss_scope": "cell" if reset_ok else "process",
        "torch_threads": torch.get_num_threads(),
        "machine": _machine(),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _machine() -> str:
    """The machine a cell ran on (doc.machine_description)."""
    from .doc import machine_description

    return machine_description()


def _recommended(rows: list[dict], det_keys: Sequence[str]) -> dict:
    """The recommended epoch of a cell (decision.recommend_epoch, as the trainer reported
    it after the last epoch; the last epoch for methods without a held-out slice) and
    its test accuracy and detection."""
    epoch = rows[-1].get("recommended_epoch") or rows[-1]["epoch"]
    row = next(r for r in rows if r["epoch"] == epoch)
    return {
        "recommended_epoch": epoch,
        "recommended_test_accuracy": row["test_accuracy"],
        "detection_recommended": {k.replace("detection_", ""): row[k] for k in det_keys} or None,
    }


# ---- the run ------------------------------------------------------------------------------


def cell_path(out: Path, cell: Cell) -> Path:
    return Path(out) / "cells" / f"{cell.key}.json"


def check_settings(out: Path, settings: BenchSettings) -> None:
    """Pin the settings to OUT on first use; refuse a later run with other settings."""
    from ..atomic import atomic_write_text

    path = Path(out) / "bench.json"
    if path.is_file():
        # Settings added later take their default in a folder made before them, except
        # cv_epochs: before it was a setting, CL's folds trained for warmup_epochs epochs.
        stored = json.loads(path.read_text())["settings"]
        saved = {**dataclasses.asdict(BenchSettings()), **stored}
        if "cv_epochs" not in stored:
            saved["cv_epochs"] = saved["warmup_epochs"]
        current = settings.to_dict()
        diff = [f"{k} was {saved.get(k)!r}, now {current.get(k)!r}" for k in sorted(set(saved) | set(current))
                if saved.get(k) != current.get(k)]
        if diff:
            raise ValueError(f"{out} holds results made with other settings ({'; '.join(diff)}); use the same "
                             "settings to extend it, or another --out")
        return
    atomic_write_text(path, json.dumps({"settings": settings.to_dict()}, indent=2))


def run_bench(
    cells: Sequence[Cell],
    settings: BenchSettings,
    out: str | Path,
    data_root: str | Path = DEFAULT_DATA_ROOT,
    model_factory: Callable | None = None,
    tokenizer=None,
    device: str = "auto",
    max_minutes: float | None = None,
    log: Callable[[str], None] = print,
    command: str | None = None,
) -> dict:
    """Run every cell whose file is missing; return {"ran": [...], "skipped": [...], "failed": [...], "not_run": [...]}.

    model_factory: (num_labels, seed) -> TextClassifier; None loads settings.model's
    pretrained encoder once. max_minutes: start no new cell after this many minutes.
    A failing cell is logged and left unwritten (a rerun retries it); the others go on.
    """
    from ..atomic import atomic_write_text
    from .methods import METHODS, pretrained_factory

    out = Path(out)
    for c in cells:
        if c.method not in METHODS:
            raise ValueError(f"unknown method {c.method!r}")
    out.mkdir(parents=True, exist_ok=True)
    check_settings(out, settings)
    todo = [c for c in cells if not cell_path(out, c).is_file()]
    summary: dict[str, list] = {"ran": [], "skipped": [c.key for c in cells if c not in todo], "failed": [],
                                "not_run": []}
    if summary["skipped"]:
        log(f"{len(summary['skipped'])} of {len(cells)} cells already done, skipped")
    started = time.perf_counter()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    data: dict[str, tuple] = {}
    if todo and model_factory is None:
        model_factory, tok = pretrained_factory(cell_config(todo[0], settings, device).model)
        tokenizer = tokenizer or tok
    for i, cell in enumerate(todo):
        if max_minutes is not None and time.perf_counter() - started > 60 * max_minutes:
            summary["not_run"] = [c.key for c in todo[i:]]
            log(f"time budget of {max_minutes:g} min reached; {len(todo) - i} cells not started")
            break
        try:
            if cell.dataset not in data:
                data[cell.dataset] = load_bench_data(data_root, cell.dataset, settings)
            train, test = data[cell.dataset]
            noisy, info = noisy_train(train, cell.noise, cell.rate, cell.seed)
            log(f"[{i + 1}/{len(todo)}] {cell.key} ...")
            doc = run_cell(cell, settings, noisy, test, info, model_factory, tokenizer, device, log=log)
        except KeyboardInterrupt:
            summary["not_run"] = [c.key for c in todo[i:]]
            log("interrupted; finished cells are kept, rerun the same command to resume")
            break
        except Exception as exc:  # one broken cell must not lose a night of others
            log(f"cell {cell.key} FAILED: {type(exc).__name__}: {exc}")
            traceback.print_exc(file=sys.stderr)
            summary["failed"].append({"key": cell.key, "error": f"{type(exc).__name__}: {exc}"})
            continue
        atomic_write_text(cell_path(out, cell), json.dumps(doc, indent=1))
        summary["ran"].append({"key": cell.key, "wall_seconds": round(doc["wall_seconds"], 1)})
        det = doc["detection_last"]
        log(f"    best {doc['best_test_accuracy']:.4f} last {doc['last_test_accuracy']:.4f}"
            + (f" det_auroc {det['auroc']:.3f}" if det and det["auroc"] is not None else "")
            + f"  {doc['wall_seconds']:.0f}s ({doc['seconds_per_epoch']:.1f} s/epoch, {doc['peak_rss_mb']:.0f} MB)")
    record = {"command": command, "started_at": started_at, "wall_seconds": round(time.perf_counter() - started, 1),
              "cells": len(cells), **summary}
    runs = out / "runs.jsonl"
    previous = runs.read_text() if runs.is_file() else ""
    atomic_write_text(runs, previous + json.dumps(record) + "\n")
    return summary


# ---- CLI -------------------------------------------------------------------------------------


def add_parser(sub) -> argparse.ArgumentParser:
    """The `bench` subcommand (called from cli.build_parser)."""
    b = sub.add_parser("bench", help="run the paper's comparison grid resumably and render docs/BENCHMARKS.md tables",
                       description=__doc__.split("\n\n")[0])
    g = b.add_argument_group("grid")
    g.add_argument("--datasets", default="trec", help="comma list: trec, agnews, imdb or a folder name under --data-root")
    g.add_argument("--noise", default="asym:0.4", help="comma list of kind:rate, kinds none/sym/asym/idn (e.g. asym:0.2,idn:0.4)")
    g.add_argument("--methods", default="ce,selfmix",
                   help="comma list of methods or groups: all, paper, baselines, ablations, reference")
    g.add_argument("--seeds", default="0", help="comma list of seeds (noise draw, init, data order)")
    g.add_argument("--data-root", default=str(DEFAULT_DATA_ROOT), help="folder holding trec/, agnews/, imdb/")
    s = b.add_argument_group("settings (fixed per --out folder)")
    s.add_argument("--max-train-samples", type=int, default=None)
    s.add_argument("--max-test-samples", type=int, default=None)
    s.add_argument("--max-length", type=int, default=32)
    s.add_argument("--epochs", type=int, default=6)
    s.add_argument("--warmup-epochs", type=int, default=2)
    s.add_argument("--lr", type=float, default=5e-5)
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--model", default=None, help="encoder folder or hub id (default: the bundled MiniLM-L6)")
    s.add_argument("--cv-folds", type=int, default=5, help="Confident Learning's K-fold cross-validation")
    s.add_argument("--cv-epochs", type=int, default=3, help="Confident Learning's epochs per CV fold")
    s.add_argument("--data-seed", type=int, default=0, help="draws the train/test subsets")
    s.add_argument("--pooling", choices=["cls", "mean", "auto"], default="cls", help="sentence embedding (paper: cls)")
    s.add_argument("--speed", action="store_true",
                   help="the trainer's speed options (SpeedConfig); off by default, as in every folder made before them")
    s.add_argument("--speed-off", default="", metavar="OPTIONS",
                   help="with the speed options, these off (comma list of SpeedConfig's switches, e.g. bf16_cpu)")
    r = b.add_argument_group("running and output")
    r.add_argument("--out", required=True, help="results folder (cells/, bench.json, runs.jsonl)")
    r.add_argument("--device", default="auto")
    r.add_argument("--threads", type=int, default=None, help="torch threads (1 is fastest on a shared 2-core CPU)")
    r.add_argument("--max-minutes", type=float, default=None, help="start no new cell after this many minutes")
    r.add_argument("--render-only", action="store_true", help="run nothing; render the cells already in --out")
    r.add_argument("--doc", default=None, help="markdown file to update (default docs/BENCHMARKS.md)")
    r.add_argument("--section", default=None, help="section name in the doc (default bench-<out folder name>)")
    r.add_argument("--title", default=None, help="section heading")
    r.add_argument("--no-doc", action="store_true", help="print the tables instead of updating the doc")
    return b


def settings_from_args(a: argparse.Namespace) -> BenchSettings:
    return BenchSettings(max_train_samples=a.max_train_samples, max_test_samples=a.max_test_samples,
                         max_length=a.max_length, epochs=a.epochs, warmup_epochs=a.warmup_epochs, lr=a.lr,
                         batch_size=a.batch_size, model=a.model, cv_folds=a.cv_folds, cv_epochs=a.cv_epochs,
                         data_seed=a.data_seed, pooling=a.pooling, speed=a.speed or bool(a.speed_off),
                         speed_off=a.speed_off)


def cmd_bench(a: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if a.threads is not None:
        if a.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {a.threads}")
        import torch

        torch.set_num_threads(a.threads)
    out = Path(a.out)
    command = "python -m selfmix_core " + " ".join(shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:]))
    if not a.render_only:
        settings = settings_from_args(a)
        cells = grid([d.strip() for d in a.datasets.split(",") if d.strip()], parse_noise(a.noise),
                     parse_methods(a.methods), parse_ints(a.seeds, "seeds"))
        for d in {c.dataset for c in cells}:
            folder = Path(a.data_root) / d
            if not (folder / DATASETS.get(d, ("train.csv",))[0]).is_file():
                raise ValueError(f"dataset {d!r} not found under {a.data_root} (expected {folder})")
        summary = run_bench(cells, settings, out, a.data_root, device=a.device, max_minutes=a.max_minutes,
                            command=command, log=lambda m: print(m, flush=True))
        if summary["failed"]:
            print(f"{len(summary['failed'])} cells failed: " + ", ".join(f["key"] for f in summary["failed"]),
                  file=sys.stderr)
    elif not (out / "cells").is_dir():
        raise ValueError(f"{out} holds no cells to render")
    from .doc import DOC, update_section

    if a.doc is None and not DOC.parent.is_dir():  # run from outside the repository: no docs to update
        a.no_doc = True
    from .render import render

    md = render(out, a.title)
    if a.no_doc:
        print(md)
    else:
        doc = Path(a.doc) if a.doc else DOC
        update_section(a.section or f"bench-{out.resolve().name}", md, doc=doc)
        print(f"updated section {a.section or 'bench-' + out.resolve().name!r} of {doc}")
    return 0 if a.render_only or not summary["failed"] else 1
