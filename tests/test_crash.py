"""Issue #5, item 2: crash safety. Processes are killed with SIGKILL (no cleanup runs)
at chosen points, then restarted:

* the CLI in the middle of epoch 2: `--resume` continues from epoch 2, not from 1;
* a process appending review decisions one by one and in batches: every decision it
  reported as committed is there, batches are all-or-nothing, the database passes
  `PRAGMA integrity_check` and is still in WAL mode;
* a process in the middle of an atomic write: the old file is intact;
* a checkpoint that fails half-written: the previous checkpoint still loads;
* the app's training worker (studio.worker) in the middle of an epoch, with review
  decisions being made: after a restart the app marks the run interrupted, its Train
  page offers "Resume from epoch 1", and the resumed run finishes with every decision.

The kill points are deterministic: the child blocks at the chosen point (a hook loaded
through `sitecustomize`, or the child script itself) and says so on stdout; the test
kills it only then.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from selfmix_core.atomic import atomic_write_text
from selfmix_core.store import Store
from tests.reliability_helpers import REPO, TIMEOUT, Lines, child_env, kill, one_torch_thread
from tests.tiny_model import tiny_frame, tiny_model_dir

_one_thread = pytest.fixture(scope="module", autouse=True)(one_torch_thread)

# Loaded by the child through PYTHONPATH: blocks the trainer at (epoch, step) and says so.
BLOCK_HOOK = textwrap.dedent(
    """
    import os
    if os.environ.get("SELFMIX_TEST_BLOCK_AT"):
        import sys, time
        _epoch, _step = (int(x) for x in os.environ["SELFMIX_TEST_BLOCK_AT"].split(":"))
        import selfmix_core.trainer as _t
        _orig = _t.SelfMixTrainer._progress

        def _progress(self, epoch, phase, step, steps, seen, t0):
            _orig(self, epoch, phase, step, steps, seen, t0)
            if (epoch, step) == (_epoch, _step):
                print(f"BLOCKED epoch={epoch} step={step}", flush=True)
                time.sleep(3600)

        _t.SelfMixTrainer._progress = _progress
    """
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("crash-model"))


@pytest.fixture(scope="module")
def hook_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hook")
    (folder / "sitecustomize.py").write_text(BLOCK_HOOK)
    return folder


# ---- the CLI ----------------------------------------------------------------------------------


def test_cli_killed_mid_epoch_resumes_from_the_last_finished_epoch(tmp_path, model_dir, hook_dir):
    train = tmp_path / "train.csv"
    tiny_frame(48).to_csv(train, index=False)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "selfmix_core", "train", "--train", str(train), "--model", str(model_dir),
            "--epochs", "3", "--warmup-epochs", "1", "--batch-size", "8", "--max-length", "16", "--no-progress",
            "--out", str(out)]
    proc = subprocess.Popen(argv, cwd=REPO, env=child_env(hook_dir, SELFMIX_TEST_BLOCK_AT="2:3"),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines = Lines(proc)
    try:
        lines.wait_for("BLOCKED epoch=2 step=3")
    finally:
        kill(proc)
    assert proc.returncode == -signal.SIGKILL
    assert any(line.startswith("epoch 1 [warmup]") for line in lines.snapshot())

    # What the kill left: epoch 1 complete everywhere, nothing of epoch 2, no torn file.
    latest = json.loads((out / "checkpoints" / "latest.json").read_text())
    assert latest == {"epoch": 1, "folder": "epoch-001"}
    assert [json.loads(x)["epoch"] for x in (out / "epochs.jsonl").read_text().splitlines()] == [1]
    assert [e["epoch"] for e in json.loads((out / "metrics.json").read_text())["epochs"]] == [1]
    assert len(pd.read_csv(out / "samples.csv")) == 48
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["epoch-001", "latest.json"]

    done = subprocess.run(argv + ["--resume"], cwd=REPO, env=child_env(), capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    printed = [line.split(" [")[0] for line in done.stdout.splitlines() if line.startswith("epoch ")]
    assert printed == ["epoch 2", "epoch 3"]  # continued; epoch 1 was not trained again
    records = [json.loads(x) for x in (out / "epochs.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["phase"]) for r in records] == [(1, "warmup"), (2, "selfmix"), (3, "selfmix")]
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    assert json.loads((out / "checkpoints" / "latest.json").read_text())["epoch"] == 3


# ---- the store: decisions --------------------------------------------------------------------

DECIDER = textwrap.dedent(
    """
    import sys
    from selfmix_core.store import Store
    store = Store(sys.argv[1])
    run_id = sys.argv[2]
    i = 0
    while True:
        action = ("relabel", "keep", "drop", "accept")[i % 4]
        new = None if action in ("keep", "drop") else (i + 1) % 3
        did = store.add_decision(run_id, i % 40, i % 3, new, action)
        print(f"single {did}", flush=True)
        if i % 10 == 9:  # a bulk action: 25 decisions in one transaction (samples 1000+)
            rows = [(1000 + j, 2, 0, "relabel") for j in range(25)]
            store.add_decisions(run_id, rows)
            print("batch 25", flush=True)
        if i % 7 == 6:
            undone = store.undo_last(run_id)
            print(f"undo {undone['undo_id']}", flush=True)
        i += 1
    """
)


def test_decisions_survive_sigkill(tmp_path):
    home = tmp_path / "home"
    store = Store(home)
    ds = store.add_dataset("tiny", tiny_frame(40), {"label_names": ["colour", "fruit", "vehicle"]})
    run_id = store.create_run(ds, {"epochs": 3})
    store.close()
    proc = subprocess.Popen([sys.executable, "-c", DECIDER, str(home), run_id], cwd=REPO, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = Lines(proc)
    try:
        lines.wait_for("batch")  # a few batches and undos in ...
        lines.wait_for("undo")
        target = len(lines.snapshot()) + 150
        end = time.monotonic() + TIMEOUT
        while len(lines.snapshot()) < target and time.monotonic() < end:
            time.sleep(0.005)
    finally:
        kill(proc)  # ... then killed in the middle of whatever it was writing
    reported = lines.snapshot()
    singles = {int(x.split()[1]) for x in reported if x.startswith("single ")}
    undos = {int(x.split()[1]) for x in reported if x.startswith("undo ")}
    batches = sum(1 for x in reported if x.startswith("batch "))
    assert len(singles) > 50 and batches >= 5 and undos

    raw = sqlite3.connect(home / "studio.sqlite3")
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()

    store = Store(home)  # reopening recovers the WAL
    log = store.decision_log(run_id)
    ids = set(log["id"].tolist())
    assert singles <= ids and undos <= ids  # every decision reported as committed is there
    # a bulk action is all or nothing: its rows come in whole runs of 25 consecutive ids
    bulk = log[(log["action"] == "relabel") & (log["sample_index"] >= 1000)]
    assert len(bulk) % 25 == 0 and len(bulk) // 25 in (batches, batches + 1)
    for start in range(0, len(bulk), 25):
        chunk = bulk.iloc[start:start + 25]
        assert chunk["sample_index"].tolist() == list(range(1000, 1025))
        assert np.all(np.diff(chunk["id"].to_numpy()) == 1)
    # besides the batches, at most the one statement in flight at the kill is in the log
    # without having been reported
    assert len(ids - singles - undos - set(bulk["id"].tolist())) <= 1
    # the log replays: undone decisions are not in effect
    current = store.current_decisions(run_id)
    assert all(d["decision_id"] not in set(log["undoes"].dropna().astype(int)) for d in current.values())
    assert store.journal_mode() == "wal"
    store.close()


# ---- atomic writes ----------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys, time
    from selfmix_core.atomic import atomic_path
    with atomic_path(sys.argv[1]) as tmp:
        with open(tmp, "w") as fh:
            fh.write("NEW " * 100_000)
            fh.flush()
            print("HALF", flush=True)
            time.sleep(3600)
            fh.write("END")
    """
)


def test_atomic_write_killed_midway_keeps_the_old_file(tmp_path):
    target = tmp_path / "metrics.json"
    atomic_write_text(target, json.dumps({"epoch": 1}))
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], cwd=REPO, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = Lines(proc)
    try:
        lines.wait_for("HALF")
    finally:
        kill(proc)
    assert json.loads(target.read_text()) == {"epoch": 1}  # the old content, complete
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "metrics.json"]
    # the half-written temp file is hidden, next to the target, and never read by anything
    assert len(leftovers) == 1 and leftovers[0].startswith(".metrics.json.") and ".tmp" in leftovers[0]
    atomic_write_text(target, json.dumps({"epoch": 2}))  # the next write succeeds as usual
    assert json.loads(target.read_text()) == {"epoch": 2}


def test_checkpoint_failing_midway_leaves_the_previous_one_loadable(tmp_path, tiny_dataset, tiny_model_factory,
                                                                     tokenizer, monkeypatch):
    import torch

    from selfmix_core.config import ModelConfig, TrainConfig
    from selfmix_core.trainer import SelfMixTrainer

    cfg = TrainConfig(epochs=3, warmup_epochs=1, batch_size=8, lr=1e-3, device="cpu", score_batch_size=64,
                      model=ModelConfig(max_length=16))
    ckpt = tmp_path / "ckpt"
    t = SelfMixTrainer(cfg, tiny_dataset, model=tiny_model_factory(3), tokenizer=tokenizer, checkpoint_dir=ckpt)
    run = t.run()
    assert next(run).epoch == 1
    real_save = torch.save

    def crash_in_epoch_2(obj, path, *a, **kw):  # the optimizer state is written after the weights
        Path(path).write_bytes(b"half")
        raise OSError("disk full (simulated) while writing the epoch-2 checkpoint")

    monkeypatch.setattr(torch, "save", crash_in_epoch_2)
    with pytest.raises(OSError, match="simulated"):
        next(run)
    monkeypatch.setattr(torch, "save", real_save)
    assert json.loads((ckpt / "latest.json").read_text())["epoch"] == 1
    assert (ckpt / "epoch-001").is_dir() and not (ckpt / "epoch-002").exists()

    again = SelfMixTrainer(cfg, tiny_dataset, model=tiny_model_factory(3, seed=5), tokenizer=tokenizer,
                           checkpoint_dir=ckpt, resume=True)
    assert again.state.epochs_done == 1
    assert [r.epoch for r in again.run()] == [2, 3]
    assert sorted(p.name for p in ckpt.iterdir()) == ["epoch-003", "latest.json"]  # the torn temp folder is gone


def test_checkpoint_files_reach_the_disk_before_the_folder_is_renamed(tmp_path, tiny_dataset, tiny_model_factory,
                                                                      tokenizer, monkeypatch):
    """Every file of a checkpoint is fsync'ed while it still sits in the temporary folder,
    and the folder holding the rename is fsync'ed after it."""
    import selfmix_core.atomic as atomic
    from selfmix_core.config import ModelConfig, TrainConfig
    from selfmix_core.trainer import SelfMixTrainer

    synced_files, synced_dirs = [], []
    real_file, real_dir = atomic._fsync_file, atomic._fsync_dir
    monkeypatch.setattr(atomic, "_fsync_file", lambda p: (synced_files.append(Path(p)), real_file(p)))
    monkeypatch.setattr(atomic, "_fsync_dir", lambda p: (synced_dirs.append(Path(p)), real_dir(p)))
    cfg = TrainConfig(epochs=2, warmup_epochs=1, batch_size=8, lr=1e-3, device="cpu", score_batch_size=64,
                      model=ModelConfig(max_length=16))
    ckpt = tmp_path / "ckpt"
    next(SelfMixTrainer(cfg, tiny_dataset, model=tiny_model_factory(3), tokenizer=tokenizer,
                        checkpoint_dir=ckpt).run())  # the warm-up epoch and its checkpoint
    final = {p.name for p in (ckpt / "epoch-001").iterdir()}
    in_temp = {p.name for p in synced_files if p.parent.name == ".epoch-001.tmp"}
    assert {"state.json", "optimizer.pt", "split.npz", "report.json", "report.npz"} <= final
    assert final <= in_temp  # every file, synced under the temporary name
    assert ckpt / ".epoch-001.tmp" in synced_dirs and ckpt in synced_dirs


# ---- the app's worker ---------------------------------------------------------------------------

APP_CHILD = textwrap.dedent(
    """
    import sys, time
    from selfmix_core.store import Store
    from studio import worker
    from tests.tiny_model import tiny_config, tiny_frame

    home, model_dir = sys.argv[1], sys.argv[2]
    store = Store(home)
    meta = {"text_column": "text", "label_column": "label", "true_label_column": None,
            "label_names": ["colour", "fruit", "vehicle"]}
    ds = store.add_dataset("tiny", tiny_frame(48), meta)
    run_id = store.create_run(ds, tiny_config(model_dir, epochs=3, warmup=1))
    print(f"RUN {run_id}", flush=True)
    worker.start_run(store, run_id)
    while store.latest_epoch(run_id) != 1:
        time.sleep(0.02)
    # the person reviews epoch 1 while epoch 2 trains: each decision is committed at once
    for sample, action, new in [(0, "relabel", 2), (1, "drop", None), (2, "keep", None), (3, "accept", 0),
                                (4, "relabel", 0)]:
        old = int(store.load_dataset_frame(ds)["label"].map({"colour": 0, "fruit": 1, "vehicle": 2})[sample])
        did = store.add_decision(run_id, sample, old, new, action)
        print(f"DECISION {did} {sample} {action}", flush=True)
    time.sleep(3600)
    """
)


def test_app_worker_killed_mid_epoch_resumes_with_every_decision(tmp_path, model_dir, hook_dir, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from studio import worker

    home = tmp_path / "home"
    proc = subprocess.Popen([sys.executable, "-c", APP_CHILD, str(home), str(model_dir)], cwd=REPO,
                            env=child_env(hook_dir, SELFMIX_TEST_BLOCK_AT="2:4"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = Lines(proc)
    try:
        run_id = lines.wait_for("RUN ").split()[1]
        lines.wait_for("BLOCKED epoch=2 step=4")
        end = time.monotonic() + TIMEOUT
        while sum(x.startswith("DECISION") for x in lines.snapshot()) < 5 and time.monotonic() < end:
            time.sleep(0.01)
    finally:
        kill(proc)
    decided = [x.split() for x in lines.snapshot() if x.startswith("DECISION")]
    assert len(decided) == 5

    # Restart: the app opens the store (marking the killed run), and its Train page
    # offers to resume from the checkpoint of the last finished epoch.
    monkeypatch.setenv("SELFMIX_HOME", str(home))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    at.switch_page("pages/2_Train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    store = Store(home)
    run = store.get_run(run_id)
    assert run["status"] == "failed" and "interrupted" in run["error"]
    assert run["epochs_done"] == 1 and worker.has_checkpoint(store, run_id)
    log = store.decision_log(run_id)
    assert [int(d[1]) for d in decided] == log["id"].tolist()  # every decision made before the kill
    button = [b for b in at.button if b.key == "train_resume_ckpt"]
    assert button and "Resume from epoch 1" in button[0].label
    button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert worker.wait(run_id, timeout=TIMEOUT)

    run = store.get_run(run_id)
    assert run["status"] == "finished", run["error"]
    assert [s["epoch"] for s in store.list_epoch_summaries(run_id)] == [1, 2, 3]
    last = store.load_epoch_report(run_id, 3)
    assert not last.in_training[1]  # "drop" took effect after the restart
    assert last.given_label[0] == 2 and last.given_label[3] == 0 and last.given_label[4] == 0  # relabels
    assert store.decision_log(run_id)["id"].tolist() == log["id"].tolist()  # nothing lost or added
    store.close()
