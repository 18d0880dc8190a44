"""The background training worker: runs to completion writing reports and progress;
pause -> decisions -> resume feeds the decisions into the next epoch; stop; resume from
a checkpoint; a failure is recorded with its message."""

from __future__ import annotations

import time

import numpy as np
import pytest

from selfmix_core.store import Store
from studio import worker
from tests.tiny_model import tiny_config, tiny_frame, tiny_model_dir

TIMEOUT = 180


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("model"))


def _dataset(store: Store, n: int = 40) -> str:
    frame = tiny_frame(n)
    meta = {"text_column": "text", "label_column": "label", "true_label_column": None,
            "label_names": ["colour", "fruit", "vehicle"]}
    return store.add_dataset("tiny", frame, meta)


def _wait_for(predicate, timeout: float = TIMEOUT, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _join(w: worker.TrainingWorker) -> None:
    w.join(TIMEOUT)
    assert not w.is_alive(), "worker did not finish in time"


def test_run_to_completion_writes_reports_and_progress(store, model_dir):
    run_id = store.create_run(_dataset(store), tiny_config(model_dir, epochs=2, warmup=1))
    w = worker.start_run(store, run_id)
    assert worker.get_worker(run_id) is w
    assert worker.start_run(store, run_id) is w  # a second start returns the live worker
    _join(w)
    run = store.get_run(run_id)
    assert run["status"] == "finished", run["error"]
    assert run["epochs_done"] == 2
    summaries = store.list_epoch_summaries(run_id)
    assert [s["phase"] for s in summaries] == ["warmup", "selfmix"]
    report = store.load_epoch_report(run_id, 2)
    assert report.clean_prob.shape == (40,)
    # the scoring pass's embeddings: kept for the last and the recommended epoch only (issue #13)
    assert set(store.embedding_epochs(run_id)) == {2, summaries[-1]["recommended_epoch"] or 2}
    assert store.load_embeddings(run_id, 2).shape[0] == 40
    progress = store.get_progress(run_id)
    assert progress["message"] == "finished" and progress["epoch"] == 2
    assert worker.get_worker(run_id) is None  # deregistered once done
    assert worker.has_checkpoint(store, run_id)


def test_pause_decisions_resume_feed_the_next_epoch(store, model_dir):
    run_id = store.create_run(_dataset(store), tiny_config(model_dir, epochs=3, warmup=1))
    w = worker.start_run(store, run_id)
    assert worker.request(store, run_id, "pause")
    _wait_for(lambda: store.get_run(run_id)["status"] == "paused", what="status paused")
    run = store.get_run(run_id)
    assert run["epochs_done"] == 1 and run["control"] is None
    assert "paused after epoch 1" in store.get_progress(run_id)["message"]
    before = store.load_epoch_report(run_id, 1)
    assert before.in_training[5]
    # Review while paused: drop sample 5, relabel sample 6 to another class.
    old6 = int(before.given_label[6])
    new6 = (old6 + 1) % 3
    store.add_decision(run_id, 5, int(before.given_label[5]), None, "drop")
    store.add_decision(run_id, 6, old6, new6, "relabel")
    time.sleep(0.3)
    assert store.get_run(run_id)["epochs_done"] == 1  # still waiting
    assert worker.request(store, run_id, "resume")
    _join(w)
    run = store.get_run(run_id)
    assert run["status"] == "finished", run["error"]
    after = store.load_epoch_report(run_id, 2)
    assert not after.in_training[5] and np.isnan(after.clean_prob[5])
    assert int(after.given_label[6]) == new6
    assert store.load_epoch_report(run_id, 3).epoch == 3


def test_stop_while_paused_then_resume_from_checkpoint(store, model_dir):
    run_id = store.create_run(_dataset(store), tiny_config(model_dir, epochs=3, warmup=1))
    w = worker.start_run(store, run_id)
    worker.request(store, run_id, "pause")
    _wait_for(lambda: store.get_run(run_id)["status"] == "paused", what="status paused")
    store.add_decision(run_id, 3, int(store.load_epoch_report(run_id, 1).given_label[3]), None, "drop")
    assert worker.request(store, run_id, "stop")
    _join(w)
    run = store.get_run(run_id)
    assert run["status"] == "stopped" and run["epochs_done"] == 1
    assert not worker.request(store, run_id, "resume")  # an ended run takes no requests
    # The app could have restarted here: the run resumes from its checkpoint, with the decision.
    assert worker.has_checkpoint(store, run_id)
    w2 = worker.start_run(store, run_id, resume=True)
    _join(w2)
    run = store.get_run(run_id)
    assert run["status"] == "finished", run["error"]
    assert [s["epoch"] for s in store.list_epoch_summaries(run_id)] == [1, 2, 3]
    assert not store.load_epoch_report(run_id, 2).in_training[3]


def test_stop_before_the_first_epoch_ends(store, model_dir):
    run_id = store.create_run(_dataset(store), tiny_config(model_dir, epochs=2, warmup=1))
    w = worker.start_run(store, run_id)
    worker.request(store, run_id, "stop")
    _join(w)
    run = store.get_run(run_id)
    assert run["status"] == "stopped"
    assert run["epochs_done"] == 0


def test_failure_is_recorded_with_its_message(store, tmp_path):
    config = tiny_config(tmp_path / "no-such-model")
    run_id = store.create_run(_dataset(store), config)
    w = worker.start_run(store, run_id)
    _join(w)
    run = store.get_run(run_id)
    assert run["status"] == "failed"
    assert "ModelLoadError" in run["error"] and "does not exist" in run["error"]
    assert "Traceback" in (store.run_dir(run_id) / "worker.log").read_text()


def test_estimate_progress():
    run = {"status": "running", "total_epochs": 4, "config": {"epochs": 4}}
    summaries = [{"epoch": 1, "seconds": 10.0}, {"epoch": 2, "seconds": 20.0}]
    progress = {"epoch": 3, "step": 5, "steps_in_epoch": 10, "seconds": 6.0}
    est = worker.estimate_progress(run, progress, summaries)
    assert est["in_epoch"] and est["epoch"] == 3
    assert est["epoch_frac"] == pytest.approx(0.5)
    assert est["run_frac"] == pytest.approx(2.5 / 4)
    assert est["epoch_eta_s"] == pytest.approx(6.0)
    # this epoch: max(mean 15 - 6 elapsed, 6) = 9 s left, then one more epoch of 15 s
    assert est["run_eta_s"] == pytest.approx(24.0)
    finished = worker.estimate_progress({**run, "status": "finished"}, progress, summaries + [
        {"epoch": 3, "seconds": 1.0}, {"epoch": 4, "seconds": 1.0}])
    assert finished["run_frac"] == 1.0 and finished["run_eta_s"] is None and not finished["in_epoch"]


def test_resume_stores_an_epoch_that_was_checkpointed_but_never_stored(store, model_dir):
    """A kill between the checkpoint and store.save_epoch_report must not lose the epoch."""
    from selfmix_core.config import TrainConfig
    from selfmix_core.trainer import SelfMixTrainer, TrainerControl

    run_id = store.create_run(_dataset(store), tiny_config(model_dir, epochs=2, warmup=1))
    run = store.get_run(run_id)
    train, test = worker.load_run_data(store, run)
    control = TrainerControl()
    t = SelfMixTrainer(TrainConfig.from_dict(run["config"]), train, test, control=control,
                       checkpoint_dir=worker.checkpoint_dir(store, run_id))
    for report in t.run():  # epoch 1 is checkpointed; the "process dies" before storing it
        control.stop()
    store.set_run_status(run_id, "failed", error="killed")
    assert store.latest_epoch(run_id) is None
    w = worker.start_run(store, run_id, resume=True)
    _join(w)
    assert store.get_run(run_id)["status"] == "finished"
    assert [s["epoch"] for s in store.list_epoch_summaries(run_id)] == [1, 2]


def test_stop_after_this_epoch_keeps_the_epoch(store, model_dir):
    run_id = store.create_run(_dataset(store), tiny_config(model_dir, epochs=3, warmup=1))
    assert not worker.stop_after_epoch(run_id)  # no worker yet
    w = worker.start_run(store, run_id)
    assert worker.stop_after_epoch(run_id) and worker.stopping_after_epoch(run_id)
    _join(w)
    run = store.get_run(run_id)
    assert run["status"] == "stopped" and run["epochs_done"] == 1  # epoch 1 finished and stored
    assert [s["epoch"] for s in store.list_epoch_summaries(run_id)] == [1]
    assert worker.has_checkpoint(store, run_id) and not worker.stopping_after_epoch(run_id)


def test_provisional_flags_of_the_first_epoch_are_kept_for_the_train_page(store, model_dir):
    import dataclasses

    cfg = tiny_config(model_dir, epochs=2, warmup=1)
    cfg = dataclasses.replace(cfg, batch_size=8, speed=dataclasses.replace(cfg.speed, provisional_every=0.5))
    run_id = store.create_run(_dataset(store), cfg)
    assert worker.provisional_flags(store, run_id) is None
    _join(worker.start_run(store, run_id))
    assert store.get_run(run_id)["status"] == "finished", store.get_run(run_id)["error"]
    flags = worker.provisional_flags(store, run_id)
    assert flags is not None and flags.epoch == 1 and flags.fraction == pytest.approx(0.5, abs=0.1)
    assert 0 < len(flags.index) == flags.samples_seen < 40 and flags.clean_prob.shape == flags.index.shape
