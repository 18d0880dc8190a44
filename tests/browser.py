"""Driving the app in a real browser: start `streamlit run app.py` on 127.0.0.1 with a
chosen studio home, open headless Chromium through Selenium, and the small waits and
gestures the pages need. Used by tests/test_browser.py (tiny model) and
bench/screenshots.py (the demo with the bundled MiniLM, for the README's pictures).

Needs selenium, Chromium and chromedriver; `missing()` says which is absent. Every
wait is bounded."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

try:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # missing() says so; nothing below runs without selenium
    pass

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
CHROMEDRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)
PAGE_WAIT = 120  # the first page load imports torch: slow on a busy 2-core machine


def missing() -> str | None:
    """Why a browser session cannot run here, or None."""
    if not CHROMIUM:
        return "chromium is not installed (apt-get install chromium)"
    if not CHROMEDRIVER:
        return "chromedriver is not installed (apt-get install chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def app_server(home: Path, log_path: Path, **env_extra: str):
    """Run the app on a free localhost port with SELFMIX_HOME=home (and env_extra); yield its URL."""
    port = free_port()
    env = dict(os.environ, SELFMIX_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(ROOT), **env_extra)
    log = open(log_path, "wb")
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
                raise RuntimeError("streamlit did not start:\n" + Path(log_path).read_text()[-3000:])
            time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.close()


@contextmanager
def chrome(workdir: Path, width: int = 1440, height: int = 1700, extra_flags: tuple[str, ...] = ()):
    """Headless Chromium whose downloads land in workdir/downloads (as `driver.downloads`).
    extra_flags: more command-line flags (e.g. software WebGL for plotly's Scattergl)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    downloads = Path(workdir) / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", f"--user-data-dir={Path(workdir) / 'chrome-profile'}",
                 f"--window-size={width},{height}", *extra_flags):
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


def shot(d, folder: Path, name: str) -> None:
    """Screenshot of the page, scrolled to the top, as folder/name.png."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    d.execute_script("window.scrollTo(0, 0); document.querySelectorAll('section, [data-testid=stMain]')"
                     ".forEach(e => e.scrollTop = 0)")
    time.sleep(0.3)
    d.save_screenshot(str(folder / f"{name}.png"))


def set_number(d, label: str, value: int | float) -> None:
    """Type `value` into the number input labelled `label` (then Tab, which commits it)."""
    box = WebDriverWait(d, PAGE_WAIT).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, f'input[aria-label="{label}"]')))
    no_dialog(d)
    d.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].focus()", box)
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(str(value), Keys.TAB)


def relabel_in_panel(d, target: str) -> None:
    """On the Review page, relabel the sample open in the "One at a time" panel to class
    `target` (its "Relabel to" selectbox, then "Relabel"). A rerun still drawing can
    redraw the panel under us (stale elements): the gesture then starts again, at most
    three times."""
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


def wait_for_download(d, pattern: str = "*.csv", timeout: float = 60) -> list[Path]:
    """Files matching `pattern` in the browser's download folder once no download is partial."""
    deadline = time.monotonic() + timeout
    files: list[Path] = []
    while time.monotonic() < deadline:
        files = list(d.downloads.glob(pattern))
        if files and not list(d.downloads.glob("*.crdownload")):
            break
        time.sleep(0.25)
    return files
