"""Reliability benchmark (issue #5): the timings the reliability tests deliberately do
not assert.

    python bench/bench_reliability.py [--review-rows 100000] [--load-rows 200000] [--repeat 5]

* The Review page, whole script reruns (streamlit.testing AppTest, the same code path
  as the server minus the browser) on a stored run whose latest epoch flags every one
  of --review-rows samples: the first open (report and dataset read from the store),
  then reruns after a filter change. Goal: under a second.
* Loading --load-rows rows from CSV (load_dataset) and starting a trainer on them
  (tiny model, three training steps): time and peak memory growth (VmHWM, reset
  through /proc/self/clear_refs before each step).
* One committed review decision (Store.add_decision: a transaction with
  synchronous=FULL, i.e. an fsync): latency, median of 200.
* One bulk action over --review-rows samples (Store.add_decisions, one transaction) and
  reading the decisions back (Store.current_decisions), best of --repeat. Goal: each
  under 2 s at 100,000.
* A bad file through the CLI (`python -m selfmix_core train`): seconds until the exit-2
  message, median of 3.

Prints the figures and writes them to the "reliability" section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from selfmix_core.benchmark.doc import git_revision, machine_description, publish  # noqa: E402
from selfmix_core.memory import memory_status, reset_peak_memory  # noqa: E402
from selfmix_core.reports import EpochReport, GMMParams  # noqa: E402
from selfmix_core.store import Store  # noqa: E402

NAMES = ["colour", "fruit", "vehicle"]
MB = 1024**2


def review_page(home: Path, n: int, repeat: int) -> list[str]:
    from streamlit.testing.v1 import AppTest

    rng = np.random.default_rng(1)
    given = rng.integers(0, 3, n)
    frame = pd.DataFrame({"text": [f"sample {i} {'needle' if i % 997 == 0 else 'hay'} " + "word " * 10
                                   for i in range(n)], "label": np.array(NAMES)[given]})
    store = Store(home)
    ds = store.add_dataset("big", frame, {"text_column": "text", "label_column": "label", "label_names": NAMES})
    run_id = store.create_run(ds, {"epochs": 1, "selection": {"tau": 0.5}}, name="big")
    clean = rng.random(n) * 0.49
    report = EpochReport(
        epoch=1, phase="warmup", seconds=1.0, train_seconds=0.5, score_seconds=0.5, samples_trained=n,
        losses={"ce": 1.0}, given_label=given, loss=1 - clean, norm_loss=1 - clean, clean_prob=clean,
        predicted_label=(given + 1) % 3, predicted_prob=np.full(n, 0.8), in_training=np.ones(n, bool),
        gmm=GMMParams((0.2, 0.8), (0.1, 0.1), (0.5, 0.5), 0, True, 3, 6.0), tau=0.5, n_clean=0, n_noisy=n,
        given_vs_predicted=np.eye(3, dtype=np.int64),
    )
    store.save_epoch_report(run_id, report)
    store.set_run_status(run_id, "finished")
    store.add_decisions(run_id, pd.DataFrame({"sample_index": np.arange(n // 10), "old_label": given[: n // 10],
                                              "new_label": (given[: n // 10] + 1) % 3, "action": "accept"}))
    os.environ["SELFMIX_HOME"] = str(home)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    t0 = time.perf_counter()
    at.switch_page("pages/3_Review.py").run()
    first = time.perf_counter() - t0
    assert not at.exception, [e.value for e in at.exception]

    def timed(action) -> float:
        times = []
        for i in range(repeat):
            t = time.perf_counter()
            action(i)
            times.append(time.perf_counter() - t)
            assert not at.exception, [e.value for e in at.exception]
        return min(times)

    plain = timed(lambda i: at.run())
    given_filter = timed(lambda i: at.multiselect(key="review_given").set_value([NAMES[i % 3]]).run())
    search = timed(lambda i: at.text_input(key="review_query").input("NEEDLE" if i % 2 else "needle").run())
    undecided = timed(lambda i: at.toggle(key="review_undecided").set_value(bool(i % 2 == 0)).run())
    store.close()
    print(f"review page: first open {first:.2f}s, rerun {plain:.2f}s, class filter {given_filter:.2f}s, "
          f"search {search:.2f}s, undecided toggle {undecided:.2f}s")
    return [
        f"| Review page, first open (report + dataset read from the store) | {n:,} flagged | {first:.2f} s |",
        f"| Review page rerun, no change | {n:,} flagged | {plain:.2f} s |",
        f"| Review page rerun after a class filter change | {n:,} flagged | {given_filter:.2f} s |",
        f"| Review page rerun after a text search | {n:,} flagged | {search:.2f} s |",
        f"| Review page rerun after 'only undecided' | {n:,} flagged | {undecided:.2f} s |",
    ]


def load_and_train(folder: Path, n: int) -> list[str]:
    import torch

    from selfmix_core.config import ModelConfig, TrainConfig
    from selfmix_core.data import load_dataset
    from selfmix_core.model import TextClassifier, load_tokenizer
    from selfmix_core.trainer import SelfMixTrainer, TrainerCallback, TrainerControl
    from transformers import BertConfig, BertModel

    rng = np.random.default_rng(0)
    words = np.array("apple banana cherry car truck bus red blue green the a of".split())
    picks = words[rng.integers(0, len(words), size=(n, 8))]
    path = folder / "big.csv"
    pd.DataFrame({"text": [" ".join(r) + f" {i}" for i, r in enumerate(picks)],
                  "label": np.array(NAMES)[rng.integers(0, 3, n)]}).to_csv(path, index=False)
    size = path.stat().st_size
    tokenizer = load_tokenizer(None)
    reset_peak_memory()
    before = memory_status()
    t0 = time.perf_counter()
    ds = load_dataset(path)
    t_load = time.perf_counter() - t0
    load_peak = memory_status()["VmHWM"] - before["VmRSS"]

    cfg = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)
    model = TextClassifier(BertModel(cfg), 3, ModelConfig(max_length=64))
    control = TrainerControl()

    class Stop(TrainerCallback):
        def on_step_end(self, trainer, p):
            if p.step >= 3:
                control.stop()

    reset_peak_memory()
    before = memory_status()
    t0 = time.perf_counter()
    trainer = SelfMixTrainer(TrainConfig(epochs=2, warmup_epochs=1, batch_size=32, device="cpu",
                                         model=ModelConfig(max_length=64)),
                             ds, model=model, tokenizer=tokenizer, callbacks=[Stop()], control=control)
    list(trainer.run())
    t_train = time.perf_counter() - t0
    train_peak = memory_status()["VmHWM"] - before["VmRSS"]
    print(f"load {n:,} rows ({size / MB:.1f} MB CSV): {t_load:.2f}s, peak +{load_peak / MB:.0f} MB; "
          f"trainer + 3 steps: {t_train:.2f}s, peak +{train_peak / MB:.0f} MB (torch threads {torch.get_num_threads()})")
    pre_tokenised = n * 64 * 8 * 2
    return [
        f"| load_dataset() of a {size / MB:.1f} MB CSV | {n:,} rows | {t_load:.2f} s, peak +{load_peak / MB:.0f} MB "
        f"({load_peak / n:.0f} B/row) |",
        f"| SelfMixTrainer() + 3 training steps (tiny model, max_length 64; default speed options, so every text is "
        f"tokenised once before the first step: `SpeedConfig.cache_tokens`) | {n:,} rows | {t_train:.2f} s, peak "
        f"+{train_peak / MB:.0f} MB (int64 ids and masks padded to 64 would take {pre_tokenised / MB:.0f} MB) |",
    ]


def decision_latency(home: Path, count: int = 200) -> list[str]:
    store = Store(home)
    ds = store.add_dataset("d", pd.DataFrame({"text": ["a", "b"], "label": ["x", "y"]}), {})
    run_id = store.create_run(ds, {"epochs": 1})
    times = []
    for i in range(count):
        t0 = time.perf_counter()
        store.add_decision(run_id, i % 2, 0, 1, "relabel")
        times.append(time.perf_counter() - t0)
    store.close()
    med, p95 = statistics.median(times), sorted(times)[int(0.95 * count)]
    print(f"one committed decision: median {med * 1e3:.1f} ms, p95 {p95 * 1e3:.1f} ms")
    return [f"| Store.add_decision() (one committed, fsync'ed transaction) | {count} decisions | median "
            f"{med * 1e3:.1f} ms, p95 {p95 * 1e3:.1f} ms |"]


def bulk_decisions(home: Path, n: int, repeat: int) -> list[str]:
    """One bulk action over n samples (Store.add_decisions: one transaction) and the read the Review page
    does after it (Store.current_decisions), best of `repeat`, each on a fresh run. Goal: each under 2 s
    at 100,000 rows (tests/test_store.py checks that it is one transaction, not how long it takes)."""
    store = Store(home)
    ds = store.add_dataset("d", pd.DataFrame({"text": ["a", "b"], "label": ["x", "y"]}), {})
    old = np.random.default_rng(2).integers(0, 3, n)
    rows = pd.DataFrame({"sample_index": np.arange(n), "old_label": old,
                         "new_label": pd.array((old + 1) % 3, dtype="Int64"), "action": "relabel"})
    writes, reads = [], []
    for _ in range(repeat):
        run_id = store.create_run(ds, {"epochs": 1})
        t0 = time.perf_counter()
        store.add_decisions(run_id, rows)
        writes.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        assert len(store.current_decisions(run_id)) == n
        reads.append(time.perf_counter() - t0)
    store.close()
    w, r = min(writes), min(reads)
    print(f"bulk decisions, {n:,} rows: write {w:.2f}s, read back {r:.2f}s (goal: each under 2 s)")
    verdict = "met" if max(w, r) < 2.0 else "missed"
    return [f"| Store.add_decisions() of one bulk action, then Store.current_decisions() (goal: each under 2 s: "
            f"{verdict}) | {n:,} decisions | write {w:.2f} s, read back {r:.2f} s |"]


def cli_bad_input(folder: Path) -> list[str]:
    bad = folder / "bad.csv"
    bad.write_text('text,label\n"unclosed,x\nb,y\n')
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "selfmix_core", "train", "--train", str(bad), "--out",
                               str(folder / "out")], cwd=ROOT, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    med = statistics.median(times)
    print(f"CLI, malformed CSV -> exit 2: {med:.2f}s")
    return [f"| `python -m selfmix_core train` on a malformed CSV, until the exit-2 message | 1 file | {med:.2f} s |"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--review-rows", type=int, default=100_000)
    ap.add_argument("--load-rows", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    a = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows += review_page(tmp / "review-home", a.review_rows, a.repeat)
        rows += load_and_train(tmp, a.load_rows)
        rows += decision_latency(tmp / "decision-home")
        rows += bulk_decisions(tmp / "bulk-home", a.review_rows, a.repeat)
        rows += cli_bad_input(tmp)
    md = "\n".join([
        "## Reliability (issue #5)",
        "",
        f"`python bench/bench_reliability.py --review-rows {a.review_rows} --load-rows {a.load_rows} "
        f"--repeat {a.repeat}` (reruns: best of {a.repeat}); revision {git_revision()}; {machine_description()}.",
        "",
        "Review page figures are whole script reruns through `streamlit.testing` (server side, no browser "
        "rendering); the run's latest epoch flags every sample and 10% already have a decision. Memory is the "
        "growth of the process's peak resident set during the step. The correctness of each of these is tested "
        "in tests/test_resources.py and tests/test_crash.py; the times are not asserted anywhere.",
        "",
        "| what | size | result |",
        "| --- | ---: | ---: |",
        *rows,
    ])
    return publish("reliability", md, write=not a.no_write)


if __name__ == "__main__":
    sys.exit(main())
