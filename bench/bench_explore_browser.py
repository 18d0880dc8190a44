"""The Explore page's map in a real browser (issue #13): time to first draw and to redraw
after a lasso selection, at 10k and 100k points, measured in headless Chromium (software
WebGL, as on a machine without a GPU). Adds `browser` to runs/bench-explore.json and
redraws the section `explore` of docs/BENCHMARKS.md.

    python bench/bench_explore_browser.py [--sizes 10000,100000] [--no-doc]

Per size: a studio home with a dataset of N short texts in 4 classes and a finished run
whose epoch 1 has synthetic 384-wide float16 embeddings (4 clusters) and scores. First
draw: from asking for the Explore page to every point being in the drawn WebGL trace
(the server's PCA and figure, the transfer and the browser's drawing). Redraw: from the
end of a lasso over the left half of the map to the page saying how many samples it
selected and the map drawn again. Needs Chromium, chromedriver and selenium.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "runs" / "bench-explore.json"
SEED = 0


def make_run(home: Path, n: int) -> str:
    """A finished run over n synthetic samples with epoch 1's embeddings; returns its id."""
    from selfmix_core.config import TrainConfig
    from selfmix_core.reports import EpochReport, GMMParams
    from selfmix_core.store import Store

    rng = np.random.default_rng(SEED)
    k = 4
    names = ["world", "sports", "business", "science"]
    given = rng.integers(0, k, n)
    store = Store(home)
    ds = store.add_dataset(f"{n} texts", pd.DataFrame({"text": [f"synthetic text number {i}" for i in range(n)],
                                                       "label": [names[g] for g in given]}),
                           {"text_column": "text", "label_column": "label", "true_label_column": None,
                            "label_names": names})
    run_id = store.create_run(ds, TrainConfig(epochs=2, warmup_epochs=1), name=f"map {n}")
    loss = rng.gamma(1.0, 0.5, n)
    clean = np.exp(-loss)
    pred = np.where(rng.random(n) < 0.9, given, rng.integers(0, k, n))
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (given, pred), 1)
    store.save_epoch_report(run_id, EpochReport(
        epoch=1, phase="warmup", seconds=1.0, train_seconds=0.5, score_seconds=0.5, samples_trained=n,
        losses={"ce": 1.0}, given_label=given, loss=loss, norm_loss=loss / loss.max(), clean_prob=clean,
        predicted_label=pred, predicted_prob=np.full(n, 0.8), in_training=np.ones(n, bool),
        gmm=GMMParams((0.2, 1.5), (0.1, 0.5), (0.7, 0.3), 0, True, 5, 3.0), tau=0.5,
        n_clean=int((clean >= 0.5).sum()), n_noisy=int((clean < 0.5).sum()), given_vs_predicted=counts))
    centres = rng.normal(size=(k, 384)) * 3
    emb = (centres[given] + rng.normal(size=(n, 384))).astype(np.float16)
    store.save_embeddings(run_id, 1, emb)
    store.set_run_status(run_id, "finished")
    store.close()
    return run_id


def drawn_points(d) -> int:
    """Points in the drawn traces of the map (0 until Plotly has drawn it)."""
    return int(d.execute_script(
        "const p = document.querySelector('[data-testid=\"stPlotlyChart\"] .js-plotly-plot');"
        "if (!p || !p._fullData || !p.querySelector('canvas')) return 0;"
        "return p._fullData.reduce((a, t) => a + (t.visible === false || !t.x ? 0 : t.x.length), 0);") or 0)


def measure(n: int, work: Path) -> dict:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.browser import PAGE_WAIT, app_server, chrome, settle

    home = work / f"home-{n}"
    run_id = make_run(home, n)
    wait = max(PAGE_WAIT, 600)
    with app_server(home, work / f"server-{n}.log") as url, \
            chrome(work, extra_flags=("--enable-unsafe-swiftshader", "--use-angle=swiftshader")) as d:
        d.get(url)  # the app's first load (imports, the store) is not the map's time
        WebDriverWait(d, wait).until(EC.presence_of_element_located((By.XPATH, "//h1")))
        settle(d, 1.0)
        t0 = time.perf_counter()
        d.get(f"{url}/Explore?run={run_id}")
        WebDriverWait(d, wait, poll_frequency=0.1).until(lambda _: drawn_points(d) >= n)
        first = time.perf_counter() - t0
        drag = d.find_element(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"] .draglayer .nsewdrag')
        d.execute_script("arguments[0].scrollIntoView({block: 'center'})", drag)
        settle(d, 2.0)
        w, h = drag.size["width"], drag.size["height"]
        path = [(-0.48, -0.48), (0.0, -0.48), (0.0, 0.48), (-0.48, 0.48), (-0.48, -0.40)]
        chain = ActionChains(d, duration=50)
        prev = (int(path[0][0] * w), int(path[0][1] * h))
        chain.move_to_element_with_offset(drag, *prev).click_and_hold()
        for fx, fy in path[1:]:
            for step in range(1, 6):
                chain.move_to_element_with_offset(drag, prev[0] + (int(fx * w) - prev[0]) * step // 5,
                                                  prev[1] + (int(fy * h) - prev[1]) * step // 5)
            prev = (int(fx * w), int(fy * h))
        chain.release().perform()
        t1 = time.perf_counter()
        found = WebDriverWait(d, wait, poll_frequency=0.1).until(EC.presence_of_element_located(
            (By.XPATH, "//*[contains(normalize-space(.), 'samples selected on the map.') and not(*)]")))
        WebDriverWait(d, wait, poll_frequency=0.1).until(lambda _: drawn_points(d) >= n)
        redraw = time.perf_counter() - t1
        selected = int(found.text.split()[0].replace(",", ""))
    return {"n": n, "first_draw_s": first, "redraw_after_lasso_s": redraw, "selected": selected,
            "load_average": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    from tests.browser import missing

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument("--no-doc", action="store_true", help="print the section instead of updating docs/BENCHMARKS.md")
    a = p.parse_args(argv)
    if missing():
        print(f"error: {missing()}", file=sys.stderr)
        return 2
    from selfmix_core.benchmark.doc import git_revision

    from bench.bench_explore import render, update_or_print

    out = {"command": "python bench/bench_explore_browser.py " + shlex.join(sys.argv[1:] if argv is None else argv),
           "revision": git_revision(), "load_average_start": os.getloadavg()[0], "sizes": []}
    with tempfile.TemporaryDirectory(prefix="selfmix-map-") as tmp:
        for n in (int(s) for s in a.sizes.split(",")):
            out["sizes"].append(measure(n, Path(tmp)))
            print(json.dumps(out["sizes"][-1]), flush=True)
    res = json.loads(RESULTS.read_text())
    res["browser"] = out
    RESULTS.write_text(json.dumps(res, indent=2))
    update_or_print(render(res), a.no_doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
