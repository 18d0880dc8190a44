"""Review-table benchmark: how long the Review page's table work takes at 100,000 rows.

    python bench/bench_review.py [--rows 100000] [--repeat 7]

Builds a synthetic EpochReport with N samples, ALL flagged (clean_prob < tau), 3
classes and short texts, plus decisions on 1% of them, then times (best of --repeat):
  * review_frame(): the table built from the report and the decisions (every page run);
  * filter_review() with the default filters (flagged, sorted most likely wrong first);
  * filter_review() with a class filter + a score range + a case-insensitive text search;
  * filter_review() with a text search that matches nothing.
Prints the figures and writes them to the "review" section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from selfmix_core.benchmark.doc import git_revision, machine_description, update_section  # noqa: E402
from selfmix_core.reports import EpochReport  # noqa: E402
from selfmix_core.review import filter_review, review_frame  # noqa: E402

NAMES = ["negative", "positive", "neutral"]
WORDS = np.array(["good", "bad", "plot", "acting", "boring", "great", "film", "movie", "story", "ending",
                  "music", "scene", "funny", "slow", "cast"])


def synthetic(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    words = WORDS[rng.integers(0, len(WORDS), size=(n, 12))]
    texts = [" ".join(w) for w in words]
    given = rng.integers(0, 3, n)
    clean = rng.random(n) * 0.5  # all below tau = 0.5: every row is flagged
    report = EpochReport(
        epoch=1, phase="selfmix", seconds=0.0, train_seconds=0.0, score_seconds=0.0, samples_trained=n,
        losses={}, given_label=given, loss=1 - clean, norm_loss=1 - clean, clean_prob=clean,
        predicted_label=rng.integers(0, 3, n), predicted_prob=rng.random(n), in_training=np.ones(n, bool),
        gmm=None, tau=0.5, n_clean=0, n_noisy=n,
    )
    picked = rng.choice(n, size=n // 100, replace=False)
    decisions = {int(i): {"action": "relabel", "new_label": int((given[i] + 1) % 3)} for i in picked}
    return texts, report, decisions


def best_of(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args(argv)
    texts, report, decisions = synthetic(a.rows)
    t_frame, df = best_of(lambda: review_frame(texts, report, NAMES, decisions), a.repeat)
    cases = [
        ("default filters (flagged, sorted)", dict()),
        ("class + score range + text search", dict(given=["positive"], score_range=(0.05, 0.4), query="BORING")),
        ("text search with no match", dict(query="zzz-no-such-text")),
    ]
    rows = [f"| review_frame() (table from report + {len(decisions):,} decisions) | {a.rows:,} | – | {t_frame * 1e3:.0f} ms |"]
    print(f"review_frame: {t_frame * 1e3:.1f} ms for {a.rows:,} rows")
    for name, kwargs in cases:
        t, out = best_of(lambda kwargs=kwargs: filter_review(df, **kwargs), a.repeat)
        print(f"filter_review, {name}: {t * 1e3:.1f} ms -> {len(out):,} rows")
        rows.append(f"| filter_review(): {name} | {a.rows:,} | {len(out):,} | {t * 1e3:.0f} ms |")
    md = "\n".join([
        "## Review table (Review page)",
        "",
        f"`python bench/bench_review.py --rows {a.rows} --repeat {a.repeat}` (best of {a.repeat}); "
        f"revision {git_revision()}; {machine_description()}.",
        "",
        f"Synthetic data: {a.rows:,} samples, all flagged (clean_prob < τ), 3 classes, 12-word texts, "
        "decisions on 1% of them. The page runs review_frame() and one filter_review() per interaction.",
        "",
        "| step | rows in | rows out | time |",
        "| --- | ---: | ---: | ---: |",
        *rows,
    ])
    update_section("review", md)
    print("written to docs/BENCHMARKS.md (section 'review')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
