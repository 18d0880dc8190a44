"""Store: datasets, runs, epoch reports, progress, the append-only decision log, threads."""

from __future__ import annotations

import sqlite3
import threading

import numpy as np
import pandas as pd
import pytest

from selfmix_core.reports import DetectionMetrics, EpochReport, GMMParams
from selfmix_core.store import (
    _SCHEMA_V1,
    SCHEMA_VERSION,
    NotFoundError,
    SchemaVersionError,
    StaleDecisionError,
    Store,
    default_home,
)


def make_report(epoch: int, n: int = 50, k: int = 3, seed: int = 0) -> EpochReport:
    rng = np.random.default_rng(seed)
    given = rng.integers(0, k, n)
    loss = rng.random(n).astype(np.float32) * 3
    return EpochReport(
        epoch=epoch,
        phase="warmup" if epoch == 1 else "selfmix",
        seconds=1.5,
        train_seconds=1.0,
        score_seconds=0.5,
        samples_trained=n,
        losses={"ce": np.float32(0.7)} if epoch == 1 else {"mix": 0.5, "pseudo": 0.1, "rdrop": 0.01, "total": 0.6},
        given_label=given,
        loss=loss,
        norm_loss=loss / loss.max(),
        clean_prob=rng.random(n).astype(np.float32),
        predicted_label=rng.integers(0, k, n),
        predicted_prob=rng.random(n).astype(np.float32),
        in_training=rng.random(n) > 0.1,
        gmm=GMMParams((0.1, 0.8), (0.05, 0.1), (0.7, 0.3), 0, True, 12, 3.2),
        tau=0.5,
        n_clean=40,
        n_noisy=10,
        test_accuracy=0.8,
        detection=DetectionMetrics(0.5, 0.6, 0.55, 0.9, 12, 10),
        given_vs_predicted=rng.integers(0, 10, (k, k)),
        warnings=["a warning"],
    )


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    # never touch the real ~/.selfmix_studio
    monkeypatch.setenv("SELFMIX_HOME", str(tmp_path / "default_home"))


@pytest.fixture()
def store(tmp_path):
    s = Store(tmp_path / "home")
    yield s
    s.close()


@pytest.fixture()
def run_id(store):
    ds = store.add_dataset("tiny", pd.DataFrame({"text": ["a", "b", "c"], "label": ["x", "y", "x"]}), {})
    return store.create_run(ds, {"epochs": 4, "lr": 5e-5})


def test_default_home_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SELFMIX_HOME", str(tmp_path / "h"))
    assert default_home() == tmp_path / "h"
    monkeypatch.delenv("SELFMIX_HOME")
    assert default_home().name == ".selfmix_studio"
    monkeypatch.setenv("SELFMIX_HOME", str(tmp_path / "h2"))
    s2 = Store()  # honours the env var when no home is given
    assert s2.home == tmp_path / "h2" and s2.path.exists() and (s2.home / "datasets").is_dir()
    s2.close()


def test_wal_and_pragmas(store):
    assert store.journal_mode() == "wal"
    assert store.schema_version() == SCHEMA_VERSION
    conn = store._conn()
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_newer_schema_refused(tmp_path):
    home = tmp_path / "h"
    home.mkdir()
    conn = sqlite3.connect(home / "studio.sqlite3")
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(SchemaVersionError, match="newer version"):
        Store(home)


def test_reopen_keeps_data(tmp_path):
    s = Store(tmp_path)
    ds = s.add_dataset("d", pd.DataFrame({"t": ["a"]}), {"k": 1})
    s.close()
    s2 = Store(tmp_path)
    assert s2.get_dataset(ds)["meta"] == {"k": 1}
    s2.close()


def test_not_a_database(tmp_path):
    (tmp_path / "studio.sqlite3").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ValueError, match="not a readable"):
        Store(tmp_path)


def test_dataset_round_trip(store):
    frame = pd.DataFrame(
        {"text": ["good", "bad", "meh"], "label": ["pos", "neg", "pos"], "score": [1.5, np.nan, 2.0]},
        index=[10, 11, 12],
    )
    meta = {"text_column": "text", "label_names": ["neg", "pos"], "noise": {"kind": "sym", "rate": np.float64(0.2)}}
    ds = store.add_dataset("reviews", frame, meta)
    d = store.get_dataset(ds)
    assert d["name"] == "reviews" and d["n_rows"] == 3 and d["meta"]["noise"]["rate"] == 0.2
    assert d["path"] == store.home / "datasets" / f"{ds}.parquet" and d["path"].exists()
    back = store.load_dataset_frame(ds)
    pd.testing.assert_frame_equal(back, frame.reset_index(drop=True), check_dtype=False)
    assert [x["id"] for x in store.list_datasets()] == [ds]
    assert not list((store.home / "datasets").glob(".*tmp*"))


def test_dataset_validation(store):
    with pytest.raises(ValueError, match="no rows"):
        store.add_dataset("x", pd.DataFrame({"t": []}), {})
    with pytest.raises(ValueError, match="column names must be strings"):
        store.add_dataset("x", pd.DataFrame({0: ["a"]}), {})
    with pytest.raises(ValueError, match="JSON"):
        store.add_dataset("x", pd.DataFrame({"t": ["a"]}), {"bad": object()})
    with pytest.raises(ValueError, match="name"):
        store.add_dataset("  ", pd.DataFrame({"t": ["a"]}), {})
    with pytest.raises(NotFoundError):
        store.get_dataset("nope")
    assert store.list_datasets() == []


def test_runs(store):
    ds = store.add_dataset("d", pd.DataFrame({"t": ["a"]}), {})
    r1 = store.create_run(ds, {"epochs": 6}, name="first")
    r2 = store.create_run(ds, {"epochs": 3})
    run = store.get_run(r1)
    assert run["status"] == "created" and run["config"] == {"epochs": 6}
    assert run["total_epochs"] == 6 and run["epochs_done"] == 0 and run["dataset_name"] == "d"
    assert run["created_at"].endswith("+00:00")
    assert [r["id"] for r in store.list_runs()] == [r2, r1]
    assert [r["id"] for r in store.list_runs(limit=1)] == [r2]
    store.set_run_status(r1, "running")
    store.set_run_status(r1, "failed", error="boom")
    run = store.get_run(r1)
    assert run["status"] == "failed" and run["error"] == "boom" and run["updated_at"] >= run["created_at"]
    with pytest.raises(ValueError, match="status must be one of"):
        store.set_run_status(r1, "exploded")
    with pytest.raises(NotFoundError, match="no dataset"):
        store.create_run("missing", {})
    with pytest.raises(NotFoundError, match="no run"):
        store.get_run("missing")
    d = store.run_dir(r1)
    assert d == store.home / "runs" / r1 and not d.exists()  # reading makes no folder
    assert store.run_dir(r1, create=True) == d and d.is_dir()
    store.set_total_epochs(r2, 5)
    assert store.get_run(r2)["total_epochs"] == 5


def test_control_flags(store, run_id):
    assert store.get_control(run_id) is None
    store.set_run_status(run_id, "running")
    assert store.request_control(run_id, "pause") is True
    assert store.get_control(run_id) == "pause"
    store.request_control(run_id, "resume")
    assert store.clear_control(run_id, "pause") is False  # a newer request is not lost
    assert store.get_control(run_id) == "resume"
    assert store.request_control(run_id, "stop") is True
    assert store.get_run(run_id)["status"] == "stopping"
    store.set_run_status(run_id, "stopped")
    assert store.get_control(run_id) is None
    assert store.request_control(run_id, "pause") is False
    with pytest.raises(ValueError, match="action must be one of"):
        store.request_control(run_id, "explode")


def test_mark_interrupted(store, run_id):
    store.set_run_status(run_id, "running")
    assert store.mark_interrupted_runs() == [run_id]
    run = store.get_run(run_id)
    assert run["status"] == "failed" and "interrupted" in run["error"]


def test_epoch_report_round_trip(store, run_id):
    rep = make_report(1)
    store.save_epoch_report(run_id, rep)
    back = store.load_epoch_report(run_id, 1)
    for name in ("given_label", "loss", "clean_prob", "predicted_label", "in_training"):
        np.testing.assert_array_equal(getattr(back, name), getattr(rep, name))
    assert back.gmm == rep.gmm and back.detection == rep.detection and back.losses == {"ce": pytest.approx(0.7)}
    np.testing.assert_array_equal(back.given_vs_predicted, rep.given_vs_predicted)
    assert back.warnings == ["a warning"] and back.tau == 0.5 and back.given_vs_true is None

    store.save_epoch_report(run_id, make_report(2, seed=1))
    store.save_epoch_report(run_id, make_report(2, seed=2))  # upsert, not a duplicate
    assert store.latest_epoch(run_id) == 2
    assert store.get_run(run_id)["epochs_done"] == 2
    summaries = store.list_epoch_summaries(run_id)
    assert [s["epoch"] for s in summaries] == [1, 2]
    assert summaries[1]["phase"] == "selfmix" and "clean_prob" not in summaries[1]
    np.testing.assert_array_equal(store.load_epoch_report(run_id, 2).loss, make_report(2, seed=2).loss)
    with pytest.raises(NotFoundError, match="no report for epoch 7"):
        store.load_epoch_report(run_id, 7)


def test_latest_epoch_none(store, run_id):
    assert store.latest_epoch(run_id) is None
    assert store.list_epoch_summaries(run_id) == []


def test_progress_overwrite(store, run_id):
    assert store.get_progress(run_id) is None
    store.set_progress(run_id, epoch=1, phase="warmup", step=1, steps_in_epoch=10, samples_seen=32, seconds=0.5)
    store.set_progress(run_id, step=2, samples_seen=64, seconds=1.0)
    store.set_progress(run_id, message="scoring")
    p = store.get_progress(run_id)
    assert p["epoch"] == 1 and p["phase"] == "warmup" and p["step"] == 2 and p["samples_seen"] == 64
    assert p["seconds"] == 1.0 and p["message"] == "scoring" and p["steps_in_epoch"] == 10
    assert store._conn().execute("SELECT COUNT(*) FROM progress").fetchone()[0] == 1
    with pytest.raises(ValueError, match="unknown progress fields"):
        store.set_progress(run_id, eta=3)
    with pytest.raises(ValueError, match="step"):
        store.set_progress(run_id, step="two")


def test_decisions_log_undo_replay(store, run_id):
    d1 = store.add_decision(run_id, 5, 0, 2, "relabel")
    d2 = store.add_decision(run_id, 5, 0, None, "drop")
    store.add_decision(run_id, 7, 1, None, "keep")
    store.add_decision(run_id, 9, 1, 0, "accept")
    cur = store.current_decisions(run_id)
    assert cur[5]["action"] == "drop" and cur[5]["new_label"] is None
    assert cur[7] == {**cur[7], "action": "keep", "new_label": 1}
    assert cur[9]["action"] == "accept" and cur[9]["new_label"] == 0

    undone = store.undo_last(run_id)  # undoes the accept on 9
    assert undone["sample_index"] == 9 and undone["action"] == "accept"
    assert 9 not in store.current_decisions(run_id)
    store.undo_last(run_id)  # keep on 7
    undone = store.undo_last(run_id)  # drop on 5 -> relabel is effective again
    assert undone["id"] == d2
    cur = store.current_decisions(run_id)
    assert cur == {5: {**cur[5], "action": "relabel", "new_label": 2, "decision_id": d1}}

    log = store.decision_log(run_id)
    assert list(log.columns) == ["id", "time", "sample_index", "old_label", "new_label", "action", "undoes", "session", "note"]
    assert list(log["action"]) == ["relabel", "drop", "keep", "accept", "undo", "undo", "undo"]
    assert log["undoes"].tolist()[4:] == [4, 3, 2]
    assert log["id"].is_monotonic_increasing

    store.undo_last(run_id)
    assert store.current_decisions(run_id) == {}
    assert store.undo_last(run_id) is None
    assert len(store.decision_log(run_id)) == 8  # never rewritten

    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        with store._tx() as conn:
            conn.execute("DELETE FROM decisions")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        with store._tx() as conn:
            conn.execute("UPDATE decisions SET action = 'keep'")


def test_decision_validation(store, run_id):
    with pytest.raises(ValueError, match="action must be one of"):
        store.add_decision(run_id, 0, 0, 1, "flip")
    with pytest.raises(ValueError, match="needs new_label"):
        store.add_decision(run_id, 0, 0, None, "relabel")
    with pytest.raises(ValueError, match="drop"):
        store.add_decision(run_id, 0, 0, 1, "drop")
    with pytest.raises(ValueError, match="keep"):
        store.add_decision(run_id, 0, 0, 2, "keep")
    with pytest.raises(ValueError, match="sample_index"):
        store.add_decision(run_id, -1, 0, 1, "relabel")
    with pytest.raises(NotFoundError):
        store.add_decision("nope", 0, 0, 1, "relabel")
    with pytest.raises(ValueError, match="decision row 1"):
        store.add_decisions(run_id, [(0, 0, 1, "relabel"), (1, 0, 1, "flip")])
    assert len(store.decision_log(run_id)) == 0  # the bad bulk wrote nothing


def test_bulk_decisions_are_one_transaction_and_one_read(store, run_id):
    n = 100_000
    rng = np.random.default_rng(0)
    old = rng.integers(0, 3, n)
    rows = pd.DataFrame(
        {
            "sample_index": np.arange(n),
            "old_label": old,
            "new_label": pd.array((old + 1) % 3, dtype="Int64"),
            "action": "relabel",
        }
    )
    rows.loc[rows.index % 10 == 0, "action"] = "drop"
    rows.loc[rows.index % 10 == 0, "new_label"] = pd.NA
    # Bulk, checked by what SQLite is asked to do rather than by a stopwatch (a timed assert failed
    # whenever the machine was busy): one transaction for the whole batch (a commit per row syncs the
    # disk 100,000 times under synchronous=FULL), and a bounded number of statements to read it back.
    statements: list[str] = []
    store._conn().set_trace_callback(statements.append)
    assert store.add_decisions(run_id, rows) == n
    assert sum(q.strip().upper() == "COMMIT" for q in statements) == 1
    assert sum(q.strip().upper().startswith("BEGIN") for q in statements) == 1
    statements.clear()
    cur = store.current_decisions(run_id)
    assert len(statements) <= 5, statements[:10]
    store._conn().set_trace_callback(None)
    assert len(cur) == n and cur[10]["action"] == "drop" and cur[11]["new_label"] == (old[11] + 1) % 3
    store.add_decisions(run_id, [{"sample_index": 3, "old_label": 0, "action": "keep"}])
    assert store.current_decisions(run_id)[3]["action"] == "keep"
    assert store.undo_last(run_id)["sample_index"] == 3


def test_threads_write_concurrently(store, run_id):
    errors: list[BaseException] = []

    def trainer():
        try:
            for epoch in range(1, 7):
                for step in range(20):
                    store.set_progress(run_id, epoch=epoch, step=step, steps_in_epoch=20)
                store.save_epoch_report(run_id, make_report(epoch, n=5000, seed=epoch))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=trainer)
    t.start()
    for i in range(150):
        store.add_decision(run_id, i, 0, 1, "relabel")
        if i % 50 == 0:
            store.add_decisions(run_id, [(1000 + i + j, 0, None, "drop") for j in range(500)])
        store.get_progress(run_id)
    t.join(timeout=60)
    assert not t.is_alive()
    assert not errors, errors
    assert store.latest_epoch(run_id) == 6
    assert len(store.decision_log(run_id)) == 150 + 3 * 500


def test_store_shared_across_instances(tmp_path, run_id, store):
    # a second Store on the same home (another tab/process) sees committed decisions
    other = Store(store.home)
    store.add_decision(run_id, 1, 0, 2, "relabel")
    assert other.current_decisions(run_id)[1]["new_label"] == 2
    other.close()


# ---- several tabs on one run (issue #10) ----------------------------------------------------------


def test_undo_takes_back_the_sessions_own_last_action(store, run_id):
    """Tab A drops sample 41, tab B drops sample 15, tab A undoes: A's decision goes, B's stays."""
    a, b = "tab-a", "tab-b"
    store.add_decision(run_id, 41, 0, None, "drop", session=a)
    store.add_decision(run_id, 15, 0, None, "drop", session=b)
    [undone] = store.undo_action(run_id, session=a)
    assert undone["sample_index"] == 41 and undone["action"] == "drop" and undone["session"] == a
    assert set(store.current_decisions(run_id)) == {15}
    assert store.undo_action(run_id, session=a) == []  # A has nothing left; B's is not A's to undo
    assert set(store.current_decisions(run_id)) == {15}
    # a bulk action is one action: undone whole, and only it
    store.add_decision(run_id, 1, 0, 1, "relabel", session=a)
    store.add_decisions(run_id, [(2, 0, 1, "accept"), (3, 0, 2, "accept")], session=a)
    store.add_decision(run_id, 4, 0, None, "keep", session=b)
    assert [u["sample_index"] for u in store.undo_action(run_id, session=a)] == [2, 3]
    assert set(store.current_decisions(run_id)) == {1, 4, 15}
    # the undo rows say who undid
    log = store.decision_log(run_id)
    assert log[log["action"] == "undo"]["session"].tolist() == [a, a, a]
    # newest actions, per session or of anyone; undo one of them by its id
    actions = store.live_actions(run_id)
    assert [(x["sample_index"], x["n"], x["session"]) for x in actions] == [(4, 1, b), (1, 1, a), (15, 1, b)]
    assert [x["sample_index"] for x in store.live_actions(run_id, session=b)] == [4, 15]
    assert [u["sample_index"] for u in store.undo_action(run_id, session=a, decision_id=actions[2]["id"])] == [15]
    assert set(store.current_decisions(run_id)) == {1, 4}


def test_a_decision_on_a_sample_changed_meanwhile_is_refused(store, run_id):
    """Tab B shows sample 15 undecided; tab A drops it; B's keep, made against what it
    showed, is refused with the current decision, and nothing is written."""
    assert store.current_decisions(run_id) == {}
    did = store.add_decision(run_id, 15, 0, None, "drop", session="tab-a", expected=None)
    with pytest.raises(StaleDecisionError) as err:
        store.add_decision(run_id, 15, 0, None, "keep", session="tab-b", expected=None)
    assert err.value.conflicts[15]["decision_id"] == did and err.value.conflicts[15]["action"] == "drop"
    assert "#15" in str(err.value)
    assert store.current_decisions(run_id)[15]["action"] == "drop" and len(store.decision_log(run_id)) == 1
    # B, now showing A's drop, may replace it
    store.add_decision(run_id, 15, 0, None, "keep", session="tab-b", expected=did)
    assert store.current_decisions(run_id)[15]["action"] == "keep"
    # a batch is all or nothing: one stale sample refuses it whole
    with pytest.raises(StaleDecisionError) as err:
        store.add_decisions(run_id, [(15, 0, 1, "accept"), (16, 0, 1, "accept")], expected={15: did, 16: None})
    assert list(err.value.conflicts) == [15]
    assert 16 not in store.current_decisions(run_id)
    # an undo changes the sample too
    keep_id = store.current_decisions(run_id)[15]["decision_id"]
    store.undo_action(run_id, session="tab-b")
    with pytest.raises(StaleDecisionError) as err:
        store.add_decision(run_id, 15, 0, None, "drop", expected=keep_id)
    assert err.value.conflicts == {15: {**err.value.conflicts[15], "decision_id": did}}  # A's drop is back
    with pytest.raises(ValueError, match="expected"):
        store.add_decisions(run_id, [(16, 0, 1, "accept")], expected=[16])


def test_schema_1_database_is_migrated_with_its_decisions(tmp_path):
    """A studio folder written before schema 2: its decisions are kept (no session), still
    append-only, and undone as before (one action = one timestamp)."""
    home = tmp_path / "old"
    home.mkdir()
    conn = sqlite3.connect(home / "studio.sqlite3")
    conn.executescript(_SCHEMA_V1)
    t0 = "2024-01-01T00:00:00.000+00:00"
    conn.execute("INSERT INTO datasets VALUES ('d1', 'old', 3, 'datasets/d1.parquet', '{}', ?)", (t0,))
    conn.execute("INSERT INTO runs (id, dataset_id, config, status, created_at, updated_at)"
                 " VALUES ('r1', 'd1', '{}', 'finished', ?, ?)", (t0, t0))
    rows = [("r1", "2024-01-01T00:00:01.000+00:00", 0, 0, 1, "relabel"),
            ("r1", "2024-01-01T00:00:02.000+00:00", 1, 0, 1, "accept"),
            ("r1", "2024-01-01T00:00:02.000+00:00", 2, 1, 0, "accept")]
    conn.executemany("INSERT INTO decisions (run_id, time, sample_index, old_label, new_label, action)"
                     " VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()

    store = Store(home)
    assert store.schema_version() == SCHEMA_VERSION == 3
    assert set(store.current_decisions("r1")) == {0, 1, 2}
    assert store.decision_log("r1")["session"].isna().all()
    store.add_decision("r1", 5, 0, None, "drop", session="tab")
    assert [u["sample_index"] for u in store.undo_action("r1")] == [5]
    assert [u["sample_index"] for u in store.undo_action("r1")] == [1, 2]  # the old bulk accept, whole
    assert set(store.current_decisions("r1")) == {0}
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        with store._tx() as c:
            c.execute("DELETE FROM decisions")
    store.close()
    assert Store(home).schema_version() == 3  # opening again changes nothing
