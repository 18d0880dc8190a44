"""Background training: ONE thread per run that drives SelfMixTrainer and talks to the
page only through the Store. It never calls st.*.

    worker = start_run(store, run_id)          # status "running"
    request(store, run_id, "pause")            # paused after the current epoch
    store.add_decision(run_id, ...)            # review while paused
    request(store, run_id, "resume")           # decisions feed the next epochs
    request(store, run_id, "stop")             # stops between batches
    stop_after_epoch(run_id)                   # stops when the current epoch ends

Protocol (the store's control flag is the only channel, so any tab or page can steer
a run; `request` also pokes the worker directly so it reacts at once):

* after every epoch the worker saves the EpochReport (store.save_epoch_report),
  updates progress and re-applies the run's current review decisions
  (store.current_decisions -> trainer.apply_decisions; they replace earlier ones), so
  decisions always feed the epochs after the one in which they were made;
* "pause": when the epoch ends, status -> "paused", the flag is cleared and the worker
  waits; "resume" clears the flag, re-applies the decisions and sets "running";
* "stop": the trainer's stop flag is set; the trainer stops between batches (the
  unfinished epoch leaves no report); status -> "stopped";
* stop_after_epoch(run_id): a flag of the live worker (this process's registry, which
  every tab shares; nothing in the store): the current epoch finishes and is stored,
  then the run stops as above (resumable from that epoch's checkpoint);
* an exception: status -> "failed" with "<Type>: message" as the error; the traceback
  goes to <run_dir>/worker.log.

Progress (store.set_progress) is written at most every PROGRESS_INTERVAL_S seconds while
training, plus at the start/end of every epoch. The registry of live workers is a
module-level dict keyed by run id, so every Streamlit session (tab, reload, page) of
this process finds the same worker; the pages only ever read the store.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from selfmix_core.config import TrainConfig
from selfmix_core.data import TextDataset, dataset_from_frame
from selfmix_core.speed import PROVISIONAL_FILE, ProvisionalFlags, load_provisional, save_provisional
from selfmix_core.store import Store
from selfmix_core.trainer import SelfMixTrainer, TrainerCallback, TrainerControl

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.5
CONTROL_POLL_S = 0.25

_REGISTRY: dict[str, "TrainingWorker"] = {}
_REGISTRY_LOCK = threading.Lock()


# ---- loading what a run needs from the store ---------------------------------------------


def load_stored_dataset(store: Store, dataset_id: str, label_names: list[str] | None = None) -> TextDataset:
    """The TextDataset of a stored dataset, using the columns and label names in its meta."""
    info = store.get_dataset(dataset_id)
    meta = info["meta"]
    frame = store.load_dataset_frame(dataset_id)
    return dataset_from_frame(
        frame,
        text_column=meta.get("text_column", "text"),
        label_column=meta.get("label_column", "label"),
        true_label_column=meta.get("true_label_column"),
        label_names=label_names if label_names is not None else meta.get("label_names"),
        source=info["name"],
    )


def load_run_data(store: Store, run: dict) -> tuple[TextDataset, TextDataset | None]:
    """(train, test or None) for a run: its dataset and the test set recorded in the meta."""
    train = load_stored_dataset(store, run["dataset_id"])
    test_id = store.get_dataset(run["dataset_id"])["meta"].get("test_dataset_id")
    test = load_stored_dataset(store, test_id, label_names=list(train.label_names)) if test_id else None
    return train, test


def checkpoint_dir(store: Store, run_id: str) -> Path:
    return store.run_dir(run_id) / "checkpoints"


def provisional_flags(store: Store, run_id: str) -> ProvisionalFlags | None:
    """The newest provisional flags of a run's first epoch (None when there are none)."""
    return load_provisional(store.run_dir(run_id) / PROVISIONAL_FILE)


def has_checkpoint(store: Store, run_id: str) -> bool:
    return (checkpoint_dir(store, run_id) / "latest.json").is_file()


# ---- the worker ---------------------------------------------------------------------------


class _StoreCallback(TrainerCallback):
    """Writes throttled progress and polls the store's stop flag during an epoch."""

    def __init__(self, worker: "TrainingWorker") -> None:
        self.w = worker
        self._last_progress = 0.0
        self._last_poll = 0.0

    def on_epoch_begin(self, trainer, epoch: int, phase: str) -> None:
        self.w._progress(epoch=epoch, phase=phase, step=0, steps_in_epoch=None, samples_seen=0, seconds=0.0,
                         message=f"training epoch {epoch} ({phase})")
        self._last_progress = time.monotonic()

    def on_step_end(self, trainer, progress) -> None:
        now = time.monotonic()
        last_step = progress.step >= progress.steps_in_epoch
        if last_step or now - self._last_progress >= PROGRESS_INTERVAL_S:
            self._last_progress = now
            self.w._progress(
                epoch=progress.epoch, phase=progress.phase, step=progress.step,
                steps_in_epoch=progress.steps_in_epoch, samples_seen=progress.samples_seen,
                seconds=progress.seconds,
                message="scoring every training sample" if last_step else f"training epoch {progress.epoch} ({progress.phase})",
            )
        if now - self._last_poll >= CONTROL_POLL_S:
            self._last_poll = now
            self.w._poll_stop()

    def on_provisional(self, trainer, flags) -> None:
        """A rough first ranking during epoch 1 (SpeedConfig.provisional_every): kept in
        the run's folder for the Train page, which shows it until epoch 1 ends."""
        save_provisional(self.w.store.run_dir(self.w.run_id) / PROVISIONAL_FILE, flags)


class TrainingWorker(threading.Thread):
    """Runs one stored run to its end in a daemon thread.

    store, run_id: the run (its config and dataset come from the store).
    resume: continue from the run's checkpoint (store.run_dir(run)/"checkpoints").
    model, tokenizer: inject a ready model instead of loading config.model (tests).
    """

    def __init__(self, store: Store, run_id: str, resume: bool = False, model=None, tokenizer=None) -> None:
        super().__init__(name=f"selfmix-run-{run_id}", daemon=True)  # = THREAD_PREFIX + run_id
        self.store = store
        self.run_id = run_id
        self.resume = resume
        self._model, self._tokenizer = model, tokenizer
        self.control = TrainerControl()
        self.wake = threading.Event()
        self.trainer: SelfMixTrainer | None = None
        self.error: str | None = None
        self.final_status: str | None = None
        self.stop_after_epoch = False  # set by stop_after_epoch(): stop when this epoch ends

    # -- called from other threads ----------------------------------------------------------
    def notify(self, action: str) -> None:
        """React now to a control request already recorded in the store."""
        if action == "stop":
            self.control.stop()
        self.wake.set()

    # -- helpers (worker thread) ---------------------------------------------------------------
    def _progress(self, **fields: Any) -> None:
        try:
            self.store.set_progress(self.run_id, **fields)
        except Exception:  # progress is best effort; never kill a run over it
            log.exception("could not write progress of run %s", self.run_id)

    def _poll_stop(self) -> None:
        try:
            if self.store.get_control(self.run_id) == "stop":
                self.control.stop()
        except Exception:
            log.exception("could not read the control flag of run %s", self.run_id)

    def _apply_decisions(self) -> str | None:
        """Feed the run's current review decisions to the trainer; returns a problem or None."""
        decisions = self.store.current_decisions(self.run_id)
        if not decisions and not self._applied_any:
            return None
        try:
            self.trainer.apply_decisions(
                {i: {"action": d["action"], "new_label": d["new_label"]} for i, d in decisions.items()}
            )
        except ValueError as exc:
            return f"review decisions not applied: {exc}"
        self._applied_any = bool(decisions)
        return None

    def _wait_while_paused(self, epoch: int) -> str:
        """Block until resume or stop; returns "resume" or "stop"."""
        self.store.set_run_status(self.run_id, "paused")
        self.store.clear_control(self.run_id, "pause")
        self._progress(message=f"paused after epoch {epoch}: review flagged samples, then resume")
        while True:
            control = self.store.get_control(self.run_id)
            if control == "stop" or self.control.should_stop:
                return "stop"
            if control == "resume":
                self.store.clear_control(self.run_id, "resume")
                return "resume"
            if control == "pause":  # a repeated pause request while paused
                self.store.clear_control(self.run_id, "pause")
            self.wake.wait(CONTROL_POLL_S)
            self.wake.clear()

    # -- the thread ----------------------------------------------------------------------------
    def run(self) -> None:  # noqa: C901 - one linear protocol, kept in one place
        store, run_id = self.store, self.run_id
        self._applied_any = False
        gen = None
        status = "failed"
        try:
            run = store.get_run(run_id)
            config = TrainConfig.from_dict(run["config"])
            store.set_run_status(run_id, "running")
            self._progress(message="loading the data and the model")
            train, test = load_run_data(store, run)
            self.trainer = SelfMixTrainer(
                config, train, test, model=self._model, tokenizer=self._tokenizer,
                callbacks=[_StoreCallback(self)], control=self.control,
                checkpoint_dir=checkpoint_dir(store, run_id), resume=self.resume,
            )
            trainer = self.trainer
            if trainer.state.total_epochs != run.get("total_epochs"):
                store.set_total_epochs(run_id, trainer.state.total_epochs)
            if self.resume:
                missed = trainer.resumed_report  # checkpointed, but killed before it was stored
                if missed is not None and (store.latest_epoch(run_id) or 0) < missed.epoch:
                    store.save_epoch_report(run_id, missed)
                problem = self._apply_decisions()
                if problem:
                    self._progress(message=problem)
            if store.get_control(run_id) == "stop":
                self.control.stop()
            gen = trainer.run()
            stopped = False
            for report in gen:
                store.save_epoch_report(run_id, report)
                if trainer.state.total_epochs != store.get_run(run_id).get("total_epochs"):
                    store.set_total_epochs(run_id, trainer.state.total_epochs)
                done = trainer.state.epochs_done >= trainer.state.total_epochs
                self._progress(epoch=report.epoch, phase=report.phase, seconds=report.seconds,
                               message="finished" if done else f"epoch {report.epoch} done")
                problem = self._apply_decisions()
                if problem:
                    self._progress(message=problem)
                control = store.get_control(run_id)
                if control == "stop" or self.control.should_stop or self.stop_after_epoch:
                    stopped = not done
                    break
                if control == "pause" and not done:
                    if self._wait_while_paused(report.epoch) == "stop":
                        stopped = True
                        break
                    problem = self._apply_decisions()
                    store.set_run_status(run_id, "running")
                    self._progress(message=problem or f"resumed after epoch {report.epoch}")
            else:
                stopped = trainer.state.epochs_done < trainer.state.total_epochs
            status = "stopped" if stopped else "finished"
            self._progress(message="stopped" if stopped else "finished")
            store.set_run_status(run_id, status)
        except Exception as exc:  # the page shows the message; the traceback goes to a file
            status = "failed"
            self.error = f"{type(exc).__name__}: {exc}"
            try:
                (store.run_dir(run_id, create=True) / "worker.log").write_text(traceback.format_exc())
            except Exception:
                pass
            try:
                store.set_run_status(run_id, "failed", error=self.error)
                self._progress(message=f"failed: {self.error}")
            except Exception:
                log.exception("could not record the failure of run %s", run_id)
        finally:
            if gen is not None:
                gen.close()
            self.final_status = status
            with _REGISTRY_LOCK:
                if _REGISTRY.get(run_id) is self:
                    del _REGISTRY[run_id]
            try:
                store.close()  # this thread's SQLite connection
            except Exception:
                pass


# ---- registry -----------------------------------------------------------------------------------


THREAD_PREFIX = "selfmix-run-"


def _live_threads() -> list[threading.Thread]:
    """Live worker threads, found by name: this still finds them if Streamlit re-imported
    this module (a developer edited it) and the registry dict is a new, empty one."""
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX) and t.is_alive()]


def start_run(store: Store, run_id: str, resume: bool = False, model=None, tokenizer=None) -> TrainingWorker:
    """Start (or return the already running) worker of a run."""
    with _REGISTRY_LOCK:
        existing = _get_unlocked(run_id)
        if existing is not None:
            return existing
        store.clear_control(run_id)
        store.set_run_status(run_id, "running")
        worker = TrainingWorker(store, run_id, resume=resume, model=model, tokenizer=tokenizer)
        _REGISTRY[run_id] = worker
        worker.start()
        return worker


def _get_unlocked(run_id: str):
    w = _REGISTRY.get(run_id)
    if w is not None and w.is_alive():
        return w
    return next((t for t in _live_threads() if t.name == THREAD_PREFIX + run_id), None)


def get_worker(run_id: str) -> TrainingWorker | None:
    """The live worker of a run in this process, or None."""
    with _REGISTRY_LOCK:
        return _get_unlocked(run_id)


def is_alive(run_id: str) -> bool:
    return get_worker(run_id) is not None


def any_alive(home: Path | None = None) -> bool:
    """Whether a worker of this process is running (for a store home, if given)."""
    for t in _live_threads():
        store = getattr(t, "store", None)
        if home is None or (store is not None and Path(store.home) == Path(home)):
            return True
    return False


def request(store: Store, run_id: str, action: str) -> bool:
    """Record a "pause" / "resume" / "stop" request and wake the run's worker.
    Returns False when the run has already ended."""
    ok = store.request_control(run_id, action)
    w = get_worker(run_id)
    if ok and w is not None:
        w.notify(action)
    return ok


def stop_after_epoch(run_id: str) -> bool:
    """Ask the run's live worker to stop when its current epoch ends (the epoch is
    finished and stored; no progress is lost). False when no worker runs it."""
    w = get_worker(run_id)
    if w is None:
        return False
    w.stop_after_epoch = True
    w.wake.set()
    return True


def stopping_after_epoch(run_id: str) -> bool:
    """Whether the run's live worker was asked to stop when its current epoch ends."""
    w = get_worker(run_id)
    return bool(w is not None and w.stop_after_epoch)


def wait(run_id: str, timeout: float | None = None) -> bool:
    """Join a run's worker; True if it has ended (or there is none)."""
    w = get_worker(run_id)
    if w is None:
        return True
    w.join(timeout)
    return not w.is_alive()


# ---- progress arithmetic (pure; the Train page shows it) ------------------------------------------


def estimate_progress(run: dict, progress: dict | None, summaries: list[dict]) -> dict:
    """Fractions and ETAs for the epoch and the run progress bars.

    run: Store.get_run(); progress: Store.get_progress() (or None); summaries:
    Store.list_epoch_summaries(). Returns {epoch, total, epoch_frac, run_frac,
    epoch_eta_s, run_eta_s, in_epoch} (ETAs None when unknown). The epoch ETA covers
    the training steps only; the scoring pass after them is in the run ETA, which uses
    the mean duration of the finished epochs.
    """
    total = int(run.get("total_epochs") or run["config"].get("epochs") or 1)
    done = max([int(s["epoch"]) for s in summaries], default=0)
    durations = [float(s.get("seconds") or 0.0) for s in summaries if s.get("seconds")]
    mean_epoch = sum(durations) / len(durations) if durations else None
    out = {"epoch": done, "total": total, "epoch_frac": 1.0 if done else 0.0, "run_frac": min(done / total, 1.0),
           "epoch_eta_s": None, "run_eta_s": None, "in_epoch": False}
    active = run.get("status") in ("running", "stopping", "created")
    p = progress or {}
    epoch = p.get("epoch")
    if active and epoch is not None and int(epoch) > done:
        step, steps = int(p.get("step") or 0), p.get("steps_in_epoch")
        frac = (step / int(steps)) if steps else 0.0
        elapsed = float(p.get("seconds") or 0.0)
        epoch_eta = elapsed / step * (int(steps) - step) if steps and step > 0 else None
        out.update(epoch=int(epoch), epoch_frac=min(frac, 1.0), in_epoch=True, epoch_eta_s=epoch_eta,
                   run_frac=min((done + frac) / total, 1.0))
        per_epoch = mean_epoch
        if per_epoch is None and steps and step > 0:
            per_epoch = elapsed / frac if frac > 0 else None
        if per_epoch is not None:
            this_left = epoch_eta if epoch_eta is not None else per_epoch
            if mean_epoch is not None:
                this_left = max(mean_epoch - elapsed, epoch_eta or 0.0)
            out["run_eta_s"] = this_left + max(total - int(epoch), 0) * per_epoch
    elif active and mean_epoch is not None and done < total:
        out["run_eta_s"] = (total - done) * mean_epoch
    return out
