"""End to end in a real browser: `streamlit run app.py` on 127.0.0.1 with a fresh studio
home and the tiny model, driven by headless Chromium through Selenium. Upload a CSV,
save it, train two epochs (1 warm-up + 1 SelfMix), relabel one sample on the Review
page (one-at-a-time panel), download the cleaned CSV from the Export page and check it.
Saves a screenshot of each page into $SELFMIX_SCREENSHOTS if set, else into the test's
temporary folder, so a test run leaves the tree unchanged (the README's pictures come
from bench/screenshots.py, on the demo with the real model).

A second app (its own studio home) gets class, column, dataset and run names, texts and
a link parameter full of Markdown and HTML pointing at a local "beacon" server: no page
makes a link or an image of them, and the browser never requests the beacon.

Needs /usr/bin/chromium (or `chromium` on PATH), chromedriver and selenium; skipped
with the reason otherwise. Every wait is bounded."""

from __future__ import annotations

import http.server
import os
import threading
import urllib.parse
from pathlib import Path

import numpy as np

import pandas as pd
import pytest

from tests.browser import missing

pytestmark = pytest.mark.browser

if missing():
    pytest.skip(missing(), allow_module_level=True)

from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from selfmix_core.decision import recommended_epoch  # noqa: E402
from selfmix_core.review import filter_review, review_frame  # noqa: E402
from selfmix_core.store import Store  # noqa: E402
from studio.worker import load_stored_dataset  # noqa: E402
from tests.browser import (  # noqa: E402
    PAGE_WAIT,
    app_server,
    chrome,
    click_button,
    go,
    relabel_in_panel,
    set_number,
    settle,
    shot as _shot,
    wait_for_download,
    wait_for_text,
)
from tests.tiny_model import tiny_frame, tiny_model_dir  # noqa: E402

TRAIN_WAIT = 240
SHOTS_ENV = os.environ.get("SELFMIX_SCREENSHOTS")
SHOTS = Path(SHOTS_ENV).resolve() if SHOTS_ENV else Path(os.environ.get("TMPDIR", "/tmp")) / "selfmix-screenshots"


def shot(d, name: str) -> None:
    _shot(d, SHOTS, name)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    home = tmp / "home"
    with app_server(home, tmp / "server.log", SELFMIX_DEFAULT_MODEL=str(tiny_model_dir(tmp))) as url:
        yield {"url": url, "home": home, "tmp": tmp}


@pytest.fixture(scope="module")
def driver(server):
    with chrome(server["tmp"]) as d:
        yield d


def test_upload_train_review_export(server, driver):
    d = driver
    store = Store(server["home"])
    csv_path = server["tmp"] / "tiny.csv"
    tiny_frame(40).to_csv(csv_path, index=False)

    # Home, before anything exists
    d.get(server["url"])
    wait_for_text(d, "No dataset yet: go to Data")

    # Data: upload, simulate 20% noise, save
    go(d, "Data")
    WebDriverWait(d, PAGE_WAIT).until(EC.presence_of_element_located((By.CSS_SELECTOR, 'input[type="file"]')))
    d.find_elements(By.CSS_SELECTOR, 'input[type="file"]')[0].send_keys(str(csv_path))
    wait_for_text(d, "40 texts, 3 classes")
    toggle = WebDriverWait(d, PAGE_WAIT).until(EC.presence_of_element_located(
        (By.XPATH, "//label[.//*[normalize-space(text())='Simulate noise']]")))
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", toggle)
    toggle.click()
    wait_for_text(d, "About 8 labels will be flipped")
    click_button(d, "Save dataset")
    wait_for_text(d, "8 labels flipped")
    [dataset] = store.list_datasets()
    assert dataset["meta"]["noise"]["n_flipped"] == 8
    settle(d)
    shot(d, "data")

    # Train: 2 epochs (1 warm-up + 1 SelfMix) on the tiny model (the default, from the env)
    go(d, "Train")
    for label, value in (("Epochs", "2"), ("Warm-up epochs", "1")):
        set_number(d, label, value)
    click_button(d, "Start training")
    WebDriverWait(d, TRAIN_WAIT).until(lambda _: store.list_runs() and store.list_runs()[0]["status"] == "finished")
    [run] = store.list_runs()
    assert run["epochs_done"] == 2, run["error"]
    WebDriverWait(d, PAGE_WAIT).until(EC.presence_of_element_located(
        (By.XPATH, "//*[contains(., 'Status:') and contains(., 'finished')]")))
    WebDriverWait(d, PAGE_WAIT).until(lambda _: len(d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")) >= 1)
    # The run's id is in the URL, and a reload shows the run again. (The run picker's texts
    # used to carry the live status: a text gone stale during training came back as the
    # choice and landed in ?run=, and the reload said the run does not exist.)
    WebDriverWait(d, PAGE_WAIT).until(lambda _: f"run={run['id']}" in d.current_url)
    d.refresh()
    WebDriverWait(d, PAGE_WAIT).until(EC.presence_of_element_located(
        (By.XPATH, "//*[contains(., 'Status:') and contains(., 'finished')]")))
    wait_for_text(d, f"Run {run['id'][:6]}")
    assert f"run={run['id']}" in d.current_url and "does not exist" not in d.find_element(By.TAG_NAME, "body").text
    WebDriverWait(d, PAGE_WAIT).until(lambda _: len(d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")) >= 1)
    settle(d, 2)
    shot(d, "train")

    # Review: the epoch picker opens on the recommended epoch; relabel that epoch's most
    # suspicious flagged sample to another class
    recommended, _why = recommended_epoch(store.list_epoch_summaries(run["id"]))
    ds = load_stored_dataset(store, run["dataset_id"])
    report = store.load_epoch_report(run["id"], recommended)
    first = filter_review(review_frame(ds.texts, report, ds.label_names, {}, given_labels=ds.labels)).iloc[0]
    sample, given = int(first["sample_index"]), str(first["given_label"])
    target = next(n for n in ds.label_names if n != given)
    go(d, "Review")
    WebDriverWait(d, PAGE_WAIT).until(EC.presence_of_element_located((By.ID, "glide-cell-0-0")))
    picker = "//input[@role='combobox'][@aria-label='Flags of epoch']"
    WebDriverWait(d, PAGE_WAIT, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda _: (d.find_element(By.XPATH, picker).get_attribute("value") or "").startswith(
            f"epoch {recommended} (recommended"))
    settle(d)
    # Relabel it in the "One at a time" panel, which opens on the page's first undecided
    # sample (the grid's own cell editor is a canvas; its edits are covered by AppTest).
    wait_for_text(d, f"#{sample} · given {given}")
    relabel_in_panel(d, target)
    wait_for_text(d, "Saved 1 decision")
    decisions = store.current_decisions(run["id"])
    assert list(decisions) == [sample]
    assert decisions[sample]["action"] == "relabel" and decisions[sample]["new_label"] == ds.label_names.index(target)
    wait_for_text(d, "Reviewed 1 /")
    settle(d)
    shot(d, "review")

    # Export: download the cleaned CSV and check it
    go(d, "Export")
    wait_for_text(d, "1 relabeled")
    click_button(d, "Download CSV")
    files = wait_for_download(d)
    assert files, "the CSV download did not arrive"
    out = pd.read_csv(files[0])
    assert len(out) == 40
    for col in ("text", "label", "true_label", "given_label", "final_label", "action", "clean_prob", "is_label_issue"):
        assert col in out.columns
    row = out[out["sample_index"] == sample].iloc[0]
    assert row["action"] == "relabel" and row["final_label"] == target and row["given_label"] == given
    assert (out["flags_epoch"] == recommended).all()  # the export uses the epoch the picker shows
    assert (out.loc[out["sample_index"] != sample, "action"] == "none").all()
    settle(d)
    shot(d, "export")

    # Home lists the run with its status
    go(d, "Home", title="SelfMix Studio")
    wait_for_text(d, "finished · epoch 2/2")
    settle(d)
    shot(d, "home")
    store.close()


# ---- a person's strings are text: no link, no image, no request -------------------------------


@pytest.fixture
def beacon():
    """A local HTTP server that records every path requested from it; yields (base URL, hits)."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", hits
    finally:
        srv.shutdown()
        srv.server_close()


def made_from(d, base: str) -> list[str]:
    """Links and images on the page (HTML or SVG, e.g. Plotly's) that point at `base`."""
    return d.execute_script(
        "const b = arguments[0]; const out = [];"
        "document.querySelectorAll('a, img, image, [src], [href]').forEach(e => {"
        "  for (const a of ['href', 'src', 'xlink:href']) {"
        "    const v = e.getAttribute(a); if (v && v.includes(b)) out.push(e.tagName + ' ' + a + '=' + v); } });"
        "return out;", base.split("//", 1)[1])


def test_markdown_in_names_and_labels_is_shown_as_text(tmp_path, beacon, driver):
    from selenium.webdriver.common.keys import Keys

    from tests.reliability_helpers import add_finished_run

    base, hits = beacon
    labels = [f"![b]({base}/label.png)", f"[click]({base}/link) <img src={base}/html.png>",
              f"{base}/bare <{base}/angle> **bold**"]
    dataset_name = f"set ![n]({base}/name.png)"
    run_name = f"run ![r]({base}/run.png) [x]({base}/run)"
    frame = pd.DataFrame({"text": [f"text {i} ![t]({base}/text.png) <img src={base}/t.png>" for i in range(24)],
                          "label": [labels[i % 3] for i in range(24)]})
    csv_path = tmp_path / "**strong** [x] `y`.csv"
    frame.to_csv(csv_path, index=False)
    home = tmp_path / "home"
    with app_server(home, tmp_path / "server.log") as url:
        d = driver
        d.get(url)
        go(d, "Data")
        WebDriverWait(d, PAGE_WAIT).until(EC.presence_of_element_located((By.CSS_SELECTOR, 'input[type="file"]')))
        d.find_elements(By.CSS_SELECTOR, 'input[type="file"]')[0].send_keys(str(csv_path))
        wait_for_text(d, "24 texts, 3 classes")
        box = WebDriverWait(d, PAGE_WAIT).until(
            EC.presence_of_element_located((By.CSS_SELECTOR, 'input[aria-label="Dataset name"]')))
        d.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].focus()", box)
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(dataset_name, Keys.TAB)
        WebDriverWait(d, 30).until(lambda _: box.get_attribute("value") == dataset_name)
        settle(d, 0.5)
        click_button(d, "Save dataset")
        wait_for_text(d, "Saved set")
        assert not made_from(d, base), made_from(d, base)

        store = Store(home)
        [dataset] = store.list_datasets()
        assert dataset["name"] == dataset_name
        names = dataset["meta"]["label_names"]
        given = np.array([names.index(v) for v in frame["label"]])
        add_finished_run(store, dataset, given, run_name)  # its decision shows "your decision: label: ..."
        store.close()

        d.get(url)  # a new session: it shows the newest run, the one just made
        for page, ready in (("Home", "finished"), ("Train", "Loss histograms"), ("Review", "One at a time"),
                            ("Export", "Decision log")):
            go(d, page, title="SelfMix Studio" if page == "Home" else None)
            wait_for_text(d, ready)
            settle(d, 1.0)
            assert not made_from(d, base), (page, made_from(d, base))
            if page == "Review":
                body = d.find_element(By.TAG_NAME, "body").text
                assert f"Keep: {labels[0]}" in body and "run ![r]" in body  # shown, as typed
        d.get(url + "/?run=" + urllib.parse.quote(f"![u]({base}/url.png)"))
        wait_for_text(d, "does not exist in this studio")
        settle(d, 1.0)
        assert not made_from(d, base), made_from(d, base)
    assert hits == [], hits  # the browser never fetched anything from the beacon


# ---- the Explore page's map: a real lasso (issue #13) -------------------------------------------------


def test_lasso_on_the_map_opens_review_with_those_samples(tmp_path):
    """A lasso drawn with the mouse (Selenium ActionChains on plotly's drag layer) over
    part of the WebGL map selects samples; "Review these N samples" opens the Review page
    showing exactly N samples, named as selected on the map."""
    from selenium.webdriver.common.action_chains import ActionChains

    from tests.test_explore_pages import explored_run

    home = tmp_path / "home"
    store = Store(home)
    explored_run(store)  # a finished run on the tiny data, with embeddings
    store.close()
    with app_server(home, tmp_path / "server.log") as url, \
            chrome(tmp_path, extra_flags=("--enable-unsafe-swiftshader", "--use-angle=swiftshader")) as d:
        d.get(url)
        go(d, "Explore")
        wait_for_text(d, "PCA of epoch 1")
        drag = WebDriverWait(d, PAGE_WAIT).until(EC.presence_of_element_located(
            (By.CSS_SELECTOR, '[data-testid="stPlotlyChart"] .draglayer .nsewdrag')))
        d.execute_script("arguments[0].scrollIntoView({block: 'center'})", drag)
        settle(d, 2.0)
        w, h = drag.size["width"], drag.size["height"]
        # a lasso around the left half of the plot area (offsets from the element's centre)
        path = [(-0.48, -0.48), (0.0, -0.48), (0.0, 0.48), (-0.48, 0.48), (-0.48, -0.40)]
        chain = ActionChains(d, duration=50)
        x0, y0 = path[0]
        chain.move_to_element_with_offset(drag, int(x0 * w), int(y0 * h)).click_and_hold()
        prev = (int(x0 * w), int(y0 * h))
        for fx, fy in path[1:]:
            for step in range(1, 6):  # several small moves: plotly draws the lasso from them
                x = prev[0] + (int(fx * w) - prev[0]) * step // 5
                y = prev[1] + (int(fy * h) - prev[1]) * step // 5
                chain.move_to_element_with_offset(drag, x, y)
            prev = (int(fx * w), int(fy * h))
        chain.release().perform()
        found = WebDriverWait(d, PAGE_WAIT).until(EC.presence_of_element_located(
            (By.XPATH, "//*[contains(normalize-space(.), 'samples selected on the map.') and not(*)]")))
        n = int(found.text.split()[0].replace(",", ""))
        assert 0 < n < 40, found.text  # part of the map
        shot(d, "explore-lasso")
        click_button(d, f"Review these {n} samples")
        WebDriverWait(d, PAGE_WAIT).until(
            EC.presence_of_element_located((By.XPATH, "//h1[normalize-space(.)='Review']")))
        wait_for_text(d, f"Showing the {n} samples selected on the map")
        wait_for_text(d, f"{n} matching samples")
