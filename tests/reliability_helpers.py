"""Helpers shared by the reliability tests (test_bad_input, test_crash, test_resources,
test_safety): environments for child processes, a stdout reader that waits for a line,
SIGKILL, a one-thread torch for the duration of a test module, and two readers of the
Markdown a page gave Streamlit (what it shows; which links and images it makes).

Why one thread: on a busy machine (more runnable processes than cores) torch's OpenMP
workers spin-wait for each other and a tiny model's backward pass takes 0.4 s instead
of 5 ms. The tests train tiny models only, so one thread loses nothing.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 240


def child_env(*prepend: Path | str, **extra: str) -> dict[str, str]:
    """os.environ for a child process: offline hub, one CPU thread, the repo (and any
    `prepend` folders, e.g. one holding a sitecustomize.py hook) on PYTHONPATH."""
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([*(str(p) for p in prepend), str(REPO)]))
    env.update(extra)
    return env


class Lines:
    """Reads a child's stdout on a thread; wait_for(prefix) returns the first line that
    starts with prefix (raising if the child ends or the timeout passes first)."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.lines, self.cond = proc, [], threading.Condition()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)  # EOF
            self.cond.notify_all()

    def wait_for(self, prefix: str, timeout: float = TIMEOUT) -> str:
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if line is None:
                        err = self.proc.stderr.read() if self.proc.stderr else ""
                        raise AssertionError(f"child ended before {prefix!r}: {self.lines[:-1]}\n{err}")
                    if line.startswith(prefix):
                        return line
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {prefix!r}: {self.lines}")
                self.cond.wait(left)

    def count(self, prefix: str) -> int:
        with self.cond:
            return sum(1 for line in self.lines if line is not None and line.startswith(prefix))

    def snapshot(self) -> list[str]:
        with self.cond:
            return [line for line in self.lines if line is not None]


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL: no finally blocks, no atexit, no flushing -- a crash."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def one_torch_thread():
    """Generator for a module-scoped autouse fixture: torch on one thread, restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---- Markdown given to Streamlit ---------------------------------------------------------------

_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")
# What GFM turns into a link inside plain text (Streamlit's renderer does, after escapes).
_AUTOLINK = re.compile(r"(?i)(?:\b(?:https?|ftp)://|\bwww\.|[\w.+-]@[\w-]+\.[\w-])")


def unescaped(source: str) -> str:
    """The Markdown `source` with studio.text.md()'s escapes taken out (backslashes before
    punctuation, zero-width spaces): the text as the person reads it, the page's own
    **bold** etc. left in."""
    return _ESCAPED.sub(r"\1", str(source)).replace("\u200b", "")


def markup_from(source: str) -> list[str]:
    """The links, images and HTML that `source` makes when rendered as Markdown the way
    Streamlit does (CommonMark, raw HTML off, GFM autolinks in text); [] when none."""
    from markdown_it import MarkdownIt

    found = []
    for block in MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"]).parse(str(source)):
        for tok in [block, *(block.children or [])]:
            if tok.type in ("link_open", "image", "html_inline", "html_block"):
                found.append(f"{tok.type}: {tok.attrs or tok.content}")
            elif tok.type == "text" and _AUTOLINK.search(tok.content):
                found.append(f"autolink: {tok.content}")
    return found


def add_finished_run(store, dataset: dict, given, name: str) -> str:
    """A finished 2-epoch run of `dataset` with one stored epoch report (sample i's clean
    probability i/n, every prediction the next class) and one relabel decision on sample
    1: enough for every page to show the run's name, classes and a decision. Returns its id."""
    import numpy as np

    from selfmix_core.config import TrainConfig
    from selfmix_core.reports import EpochReport, GMMParams

    names = dataset["meta"]["label_names"]
    given = np.asarray(given)
    n, k = len(given), len(names)
    run_id = store.create_run(dataset["id"], TrainConfig(epochs=2, warmup_epochs=1), name=name)
    clean = np.arange(n) / n
    store.save_epoch_report(run_id, EpochReport(
        epoch=1, phase="warmup", seconds=1.0, train_seconds=0.5, score_seconds=0.5, samples_trained=n,
        losses={"ce": 1.0}, given_label=given, loss=1 - clean, norm_loss=1 - clean, clean_prob=clean,
        predicted_label=(given + 1) % k, predicted_prob=np.full(n, 0.8), in_training=np.ones(n, bool),
        gmm=GMMParams((0.2, 0.8), (0.1, 0.1), (0.5, 0.5), 0, True, 3, 6.0), tau=0.5, n_clean=n // 2,
        n_noisy=n - n // 2, given_vs_predicted=np.eye(k, dtype=np.int64)))
    store.set_run_status(run_id, "finished")
    store.add_decision(run_id, 1, int(given[1]), int((given[1] + 2) % k), "relabel")
    return run_id
