"""End to end in a real browser: `streamlit run app.py` on 127.0.0.1 with a fresh studio
home and the tiny model, driven by headless Chromium through Selenium. Upload a CSV,
save it, train two epochs (1 warm-up + 1 SelfMix), relabel one sample on the Review
page (one-at-a-time panel), download the cleaned CSV from the Export page and check it.
Saves a screenshot of each page into $SELFMIX_SCREENSHOTS if set, else into the test's
temporary folder, so a test run leaves the tree unchanged (the README's pictures come
from bench/screenshots.py, on the demo with the real model).

Needs /usr/bin/chromium (or `chromium` on PATH), chromedriver and selenium; skipped
with the reason otherwise. Every wait is bounded."""

from __future__ import annotations

import os
from pathlib import Path

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
    assert f"run={run['id']}" in d.current_url  # the run is in the URL: a reload shows it again
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
