"""The README's screenshots: the demo, end to end, in a real browser with the real model.

    python bench/screenshots.py [--epochs 4] [--warmup-epochs 2] [--out docs/screenshots]

Starts `streamlit run app.py` on 127.0.0.1 with a fresh studio home (the cached demo
corpus copied in: run `python -m selfmix_core.demo fetch` first) and the bundled
MiniLM-L6, then drives headless Chromium like a new user: Data -> "Load demo" (1,000
Rotten Tomatoes snippets, 20% simulated symmetric noise) -> "Save dataset"; Train with
the page's defaults except the epoch counts -> "Start training" and wait for the run to
finish; Review -> relabel the most suspicious sample through the one-at-a-time panel;
Export; Home. A screenshot of each page goes to --out. Needs Chromium, chromedriver and
selenium (tests/browser.py). On a 2-core CPU the training takes a few minutes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    from selfmix_core.demo import demo_cache_path
    from tests.browser import missing

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=4, help="epochs to train, warm-up included")
    p.add_argument("--warmup-epochs", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "docs" / "screenshots"), help="folder for the PNG files")
    p.add_argument("--train-minutes", type=float, default=45, help="give up if training takes longer")
    a = p.parse_args()
    if missing():
        print(f"error: {missing()}", file=sys.stderr)
        return 2
    cached = demo_cache_path()
    if not cached.is_file():
        print("error: the demo corpus is not cached; run `python -m selfmix_core.demo fetch` first", file=sys.stderr)
        return 2

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from selfmix_core.decision import recommended_epoch
    from selfmix_core.review import filter_review, review_frame
    from selfmix_core.store import Store
    from studio.worker import load_stored_dataset
    from tests.browser import (PAGE_WAIT, app_server, chrome, click_button, go, relabel_in_panel, set_number, settle,
                               shot, wait_for_text)

    out = Path(a.out)
    work = Path(tempfile.mkdtemp(prefix="selfmix-shots-"))
    home = work / "home"
    (home / "demo").mkdir(parents=True)
    shutil.copy2(cached, demo_cache_path(home))
    os.environ.pop("SELFMIX_DEFAULT_MODEL", None)  # the bundled MiniLM, as a new user gets it
    t0 = time.monotonic()
    try:
        with app_server(home, work / "server.log") as url, chrome(work) as d:
            store = Store(home)
            d.get(url)
            wait_for_text(d, "No dataset yet: go to Data")

            go(d, "Data")
            click_button(d, "Load demo")
            click_button(d, "Save dataset")
            wait_for_text(d, "labels flipped")
            settle(d, 2)
            shot(d, out, "data")
            print(f"data saved ({time.monotonic() - t0:.0f} s)", flush=True)

            go(d, "Train")
            set_number(d, "Epochs", a.epochs)
            set_number(d, "Warm-up epochs", a.warmup_epochs)
            click_button(d, "Start training")
            WebDriverWait(d, a.train_minutes * 60, poll_frequency=2).until(
                lambda _: store.list_runs() and store.list_runs()[0]["status"] in ("finished", "failed", "stopped"))
            [run] = store.list_runs()
            if run["status"] != "finished":
                print(f"error: the run ended {run['status']}: {run['error']}", file=sys.stderr)
                return 1
            WebDriverWait(d, PAGE_WAIT).until(EC.presence_of_element_located(
                (By.XPATH, "//*[contains(., 'Status:') and contains(., 'finished')]")))
            settle(d, 3)
            shot(d, out, "train")
            print(f"trained {run['epochs_done']} epochs ({time.monotonic() - t0:.0f} s)", flush=True)

            ds = load_stored_dataset(store, run["dataset_id"])
            # the Review page opens on the recommended epoch's flags
            report = store.load_epoch_report(run["id"], recommended_epoch(store.list_epoch_summaries(run["id"]))[0])
            first = filter_review(review_frame(ds.texts, report, ds.label_names, {}, given_labels=ds.labels)).iloc[0]
            given, suggested = str(first["given_label"]), str(first["suggested_label"])
            target = suggested if suggested != given else next(n for n in ds.label_names if n != given)
            go(d, "Review")
            wait_for_text(d, f"#{int(first['sample_index'])} · given {given}")
            relabel_in_panel(d, target)
            wait_for_text(d, "Saved 1 decision")
            settle(d, 2)
            shot(d, out, "review")

            go(d, "Export")
            wait_for_text(d, "1 relabeled")
            settle(d, 2)
            shot(d, out, "export")

            go(d, "Home", title="SelfMix Studio")
            wait_for_text(d, "finished")
            settle(d, 2)
            shot(d, out, "home")
            store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {', '.join(n + '.png' for n in ('home', 'data', 'train', 'review', 'export'))} to {out} "
          f"in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
