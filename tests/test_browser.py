"""End to end in a real browser: `streamlit run app.py` on 127.0.0.1 with a fresh studio
home and the tiny model, driven by headless Chromium through Selenium. Upload a CSV,
save it, train two epochs (1 warm-up + 1 SelfMix), relabel one sample on the Review
page (one-at-a-time panel), download the cleaned CSV from the Export page and check it. Saves a screenshot of
each page into $SELFMIX_SCREENSHOTS (the README's pictures: SELFMIX_SCREENSHOTS=docs/screenshots),
else into the test's temporary folder, so a test run leaves the tree unchanged.

Needs /usr/bin/chromium (or `chromium` on PATH), chromedriver and selenium; skipped
with the reason otherwise. Every wait is bounded."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SHOTS_ENV = os.environ.get("SELFMIX_SCREENSHOTS")
SHOTS = Path(SHOTS_ENV).resolve() if SHOTS_ENV else Path(os.environ.get("TMPDIR", "/tmp")) / "selfmix-screenshots"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
CHROMEDRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)
try:
    import selenium  # noqa: F401

    HAVE_SELENIUM = True
except ImportError:
    HAVE_SELENIUM = False

if not CHROMIUM:
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)
if not CHROMEDRIVER:
    pytest.skip("chromedriver is not installed (apt-get install chromium-driver)", allow_module_level=True)
if not HAVE_SELENIUM:
    pytest.skip("selenium is not installed (pip install selenium)", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from selfmix_core.review import filter_review, review_frame  # noqa: E402
from selfmix_core.store import Store  # noqa: E402
from studio.worker import load_stored_dataset  # noqa: E402
from tests.tiny_model import tiny_frame, tiny_model_dir  # noqa: E402

PAGE_WAIT = 120  # the first page load imports torch: slow on a busy 2-core machine
TRAIN_WAIT = 240


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    home = tmp / "home"
    model = tiny_model_dir(tmp)
    port = free_port()
    env = dict(os.environ, SELFMIX_HOME=str(home), SELFMIX_DEFAULT_MODEL=str(model), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(ROOT))
    log = open(tmp / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--server.fileWatcherType", "none",
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("streamlit did not start:\n" + (tmp / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        yield {"url": url, "home": home, "tmp": tmp}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.close()


@pytest.fixture(scope="module")
def driver(server):
    downloads = server["tmp"] / "downloads"
    downloads.mkdir()
    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", f"--user-data-dir={server['tmp'] / 'chrome-profile'}", "--window-size=1440,1700"):
        opts.add_argument(flag)
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(PAGE_WAIT)
    d.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    d.downloads = downloads
    try:
        yield d
    finally:
        d.quit()


def wait_for_text(d, text: str, timeout: float = PAGE_WAIT):
    return WebDriverWait(d, timeout).until(
        EC.presence_of_element_located((By.XPATH, f"//*[contains(normalize-space(.), {xpath_str(text)})]")))


def xpath_str(s: str) -> str:
    return f'"{s}"' if '"' not in s else "concat('" + s.replace("'", "', \"'\", '") + "')"


def click_button(d, label: str, timeout: float = PAGE_WAIT) -> None:
    btn = WebDriverWait(d, timeout).until(EC.element_to_be_clickable(
        (By.XPATH, f"//button[.//*[normalize-space(text())={xpath_str(label)}]]")))
    no_dialog(d)
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", btn)
    btn.click()


def go(d, page: str, title: str | None = None) -> None:
    """Click a page in the sidebar navigation (keeps the browser session) and wait for its
    title (the page name unless given)."""
    link = WebDriverWait(d, PAGE_WAIT).until(EC.element_to_be_clickable(
        (By.XPATH, f"//*[@data-testid='stSidebar']//a[.//*[normalize-space(text())='{page}']]")))
    link.click()
    WebDriverWait(d, PAGE_WAIT).until(
        EC.presence_of_element_located((By.XPATH, f"//h1[normalize-space(.)='{title or page}']")))


def no_dialog(d, timeout: float = 30) -> None:
    """Wait (bounded) until no modal (e.g. a reconnecting notice) covers the page."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and d.find_elements(By.CSS_SELECTOR, '[data-testid="stDialog"]'):
        time.sleep(0.2)


def settle(d, seconds: float = 1.0) -> None:
    """Let a rerun finish drawing: no 'running' indicator, then a short pause."""
    end = time.monotonic() + 30
    while time.monotonic() < end and d.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]'):
        time.sleep(0.2)
    time.sleep(seconds)


def shot(d, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    d.execute_script("window.scrollTo(0, 0); document.querySelectorAll('section, [data-testid=stMain]')"
                     ".forEach(e => e.scrollTop = 0)")
    time.sleep(0.3)
    d.save_screenshot(str(SHOTS / f"{name}.png"))


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
        box = WebDriverWait(d, PAGE_WAIT).until(
            EC.presence_of_element_located((By.CSS_SELECTOR, f'input[aria-label="{label}"]')))
        no_dialog(d)
        d.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].focus()", box)
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(value, Keys.TAB)
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

    # Review: relabel the most suspicious flagged sample to another class
    ds = load_stored_dataset(store, run["dataset_id"])
    report = store.load_epoch_report(run["id"], 2)
    first = filter_review(review_frame(ds.texts, report, ds.label_names, {}, given_labels=ds.labels)).iloc[0]
    sample, given = int(first["sample_index"]), str(first["given_label"])
    target = next(n for n in ds.label_names if n != given)
    go(d, "Review")
    WebDriverWait(d, PAGE_WAIT).until(EC.presence_of_element_located((By.ID, "glide-cell-0-0")))
    settle(d)
    # Relabel it in the "One at a time" panel, which opens on the page's first undecided
    # sample (the grid's own cell editor is a canvas; its edits are covered by AppTest).
    # A rerun still drawing on a cold start can redraw the panel under us (stale
    # elements): then start the gesture again, at most three times.
    wait_for_text(d, f"#{sample} · given {given}")
    relabel_to = "//input[@role='combobox'][@aria-label='Relabel to']"
    for attempt in range(3):
        try:
            box = WebDriverWait(d, PAGE_WAIT).until(EC.element_to_be_clickable((By.XPATH, relabel_to)))
            no_dialog(d)
            d.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)
            box.click()
            box.send_keys(target)
            WebDriverWait(d, 30).until(EC.element_to_be_clickable(
                (By.XPATH, f"//*[@role='option'][normalize-space(.)={xpath_str(target)}]"))).click()
            WebDriverWait(d, 30).until(lambda _: d.find_element(By.XPATH, relabel_to).get_attribute("value") == target)
            break
        except StaleElementReferenceException:
            if attempt == 2:
                raise
            settle(d)
    settle(d, 0.5)
    click_button(d, "Relabel")
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
    deadline = time.monotonic() + 60
    files: list[Path] = []
    while time.monotonic() < deadline:
        files = [p for p in d.downloads.glob("*.csv")]
        if files and not list(d.downloads.glob("*.crdownload")):
            break
        time.sleep(0.25)
    assert files, "the CSV download did not arrive"
    out = pd.read_csv(files[0])
    assert len(out) == 40
    for col in ("text", "label", "true_label", "given_label", "final_label", "action", "clean_prob", "is_label_issue"):
        assert col in out.columns
    row = out[out["sample_index"] == sample].iloc[0]
    assert row["action"] == "relabel" and row["final_label"] == target and row["given_label"] == given
    assert (out.loc[out["sample_index"] != sample, "action"] == "none").all()
    settle(d)
    shot(d, "export")

    # Home lists the run with its status
    go(d, "Home", title="SelfMix Studio")
    wait_for_text(d, "finished · epoch 2/2")
    settle(d)
    shot(d, "home")
    store.close()
