"""Many classes with long names, in a real browser (issue #11): Banking77 has 77 intents
named like `balance_not_updated_after_cheque_or_cash_deposit`. A CSV with 77 such classes
is uploaded and saved on the Data page; a finished run with one synthetic epoch report
(no training: the charts and the review are what is tested here) is added to the store,
and for K = 2, 6, 77 and 300 classes the Train page's charts are drawn in Chromium and
checked in the DOM Plotly drew:

- no legend, colour bar, axis title, facet title or annotation over a chart's title or
  over another one;
- no axis tick label cut off at the edge of its chart, none drawn over its neighbour;
- above a dozen classes, the heatmap labels every class (a tick per class).

For K = 77 the most confused pair goes from the Train page's list to the Review page,
which opens filtered to it; the one-at-a-time panel's buttons show the full long names
(nothing cut off), its top labels are listed, and Accept saves the relabel to the
suggested long-named class. Screenshots of each K go where tests/test_browser.py puts
its own ($SELFMIX_SCREENSHOTS, else the temporary folder).

Needs Chromium, chromedriver and selenium (skipped with the reason otherwise)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.browser import missing

pytestmark = pytest.mark.browser

if missing():
    pytest.skip(missing(), allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from selfmix_core.config import TrainConfig  # noqa: E402
from selfmix_core.reports import EpochReport, GMMParams  # noqa: E402
from selfmix_core.store import Store  # noqa: E402
from studio import charts  # noqa: E402
from tests.browser import (  # noqa: E402
    PAGE_WAIT,
    app_server,
    chrome,
    click_button,
    go,
    settle,
    shot as _shot,
    wait_for_text,
    xpath_str,
)

SHOTS_ENV = os.environ.get("SELFMIX_SCREENSHOTS")
SHOTS = Path(SHOTS_ENV).resolve() if SHOTS_ENV else Path(os.environ.get("TMPDIR", "/tmp")) / "selfmix-screenshots"
STEMS = ["balance_not_updated_after_cheque_or_cash_deposit", "direct_debit_payment_not_recognised",
         "apple_pay_or_google_pay", "card_payment_wrong_exchange_rate", "why_verify_identity",
         "transfer_not_received_by_recipient", "top_up_by_bank_transfer_charge"]


def long_names(k: int) -> list[str]:
    """k distinct class names, Banking77-like, some longer than any of Banking77's own."""
    return [f"{STEMS[i % len(STEMS)]}_{i:03d}" + ("_and_then_some_more_words" if i % 5 == 0 else "")
            for i in range(k)]


def confused_run(store: Store, dataset_id: str, k: int, per_class: int = 3) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """A finished 2-epoch run with one stored epoch report over k classes, `per_class`
    samples each: every sample of class 5 (class 1 when k < 6) is predicted as the next
    class (the most confused pair), a few others scattered. Returns (run id, given,
    predicted, the given x predicted counts)."""
    n = k * per_class
    given = np.repeat(np.arange(k), per_class)
    pred = given.copy()
    src = 5 if k >= 6 else 1
    pred[given == src] = (src + 1) % k
    pred[::7] = (given[::7] + 3) % k
    clean = np.where(pred != given, 0.05, 0.9)
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (given, pred), 1)
    rng = np.random.default_rng(k)
    loss = np.where(pred != given, 2.5, 0.3) + rng.uniform(0, 0.2, n)
    top3 = np.stack([pred, (pred + 1) % k, (pred + 2) % k], axis=1) if k >= 3 else None
    top3p = np.tile([0.7, 0.2, 0.05], (n, 1)) if k >= 3 else None
    run_id = store.create_run(dataset_id, TrainConfig(epochs=2, warmup_epochs=1), name=f"{k} classes")
    store.save_epoch_report(run_id, EpochReport(
        epoch=1, phase="warmup", seconds=1.0, train_seconds=0.5, score_seconds=0.5, samples_trained=n,
        losses={"ce": 1.0}, given_label=given, loss=loss, norm_loss=loss / loss.max(), clean_prob=clean,
        predicted_label=pred, predicted_prob=np.full(n, 0.7), in_training=np.ones(n, bool),
        gmm=GMMParams((0.2, 0.8), (0.1, 0.1), (0.5, 0.5), 0, True, 3, 6.0), tau=0.5,
        n_clean=int((clean >= 0.5).sum()), n_noisy=int((clean < 0.5).sum()), given_vs_predicted=counts,
        test_accuracy=0.8, val_accuracy=0.7, n_val=10, top3_label=top3, top3_prob=top3p))
    store.set_run_status(run_id, "finished")
    return run_id, given, pred, counts


# Every drawn chart (a hidden tab's have no size): what overlaps or is cut off, in words.
LAYOUT_PROBLEMS_JS = r"""
const out = [];
const area = (a, b) => Math.max(0, Math.min(a.right, b.right) - Math.max(a.left, b.left))
                     * Math.max(0, Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top));
const box = e => e.getBoundingClientRect();
const shown = r => r.width > 0 && r.height > 0;
document.querySelectorAll('.js-plotly-plot').forEach((p, i) => {
  if (!shown(box(p))) return;
  const svg = box(p.querySelector('.main-svg'));
  const t = p.querySelector('.gtitle');
  const name = (t && t.textContent) || ('chart ' + i);
  const labelled = [];
  if (t && shown(box(t))) labelled.push(['title', box(t)]);
  const legend = p.querySelector('.legend');
  if (legend && shown(box(legend))) labelled.push(['legend', box(legend)]);
  p.querySelectorAll('.annotation-text').forEach(e => { if (shown(box(e))) labelled.push(['annotation "' + e.textContent + '"', box(e)]); });
  p.querySelectorAll('.xtitle, .ytitle').forEach(e => { if (shown(box(e))) labelled.push(['axis title "' + e.textContent + '"', box(e)]); });
  p.querySelectorAll('.colorbar').forEach(e => { if (shown(box(e))) labelled.push(['colour bar', box(e)]); });
  for (let a = 0; a < labelled.length; a++)
    for (let b = a + 1; b < labelled.length; b++)
      if (area(labelled[a][1], labelled[b][1]) > 2) out.push(name + ': ' + labelled[a][0] + ' overlaps ' + labelled[b][0]);
  for (const axis of ['xtick', 'ytick']) {
    const ticks = [...p.querySelectorAll('.' + axis + ' text')].map(e => [e.textContent, box(e)]).filter(x => shown(x[1]));
    for (const [txt, r] of ticks)
      if (r.left < svg.left - 1 || r.right > svg.right + 1 || r.top < svg.top - 1 || r.bottom > svg.bottom + 1)
        out.push(name + ': tick label "' + txt + '" cut off');
    // neighbours along the axis: overlapping by more than a third of a label's thickness
    // (a text's box includes the font's ascent and descent, so boxes touch at tight spacing)
    const lo = axis === 'xtick' ? 'left' : 'top', hi = axis === 'xtick' ? 'right' : 'bottom';
    ticks.sort((a, b) => a[1][lo] - b[1][lo]);
    for (let j = 1; j < ticks.length; j++) {
      const [a, b] = [ticks[j - 1][1], ticks[j][1]];
      const overlap = Math.min(a[hi], b[hi]) - Math.max(a[lo], b[lo]);
      if (area(a, b) > 0 && overlap > Math.min(a[hi] - a[lo], b[hi] - b[lo]) / 3)
        out.push(name + ': tick labels "' + ticks[j - 1][0] + '" and "' + ticks[j][0] + '" overlap');
    }
  }
});
return out;
"""


def layout_problems(d) -> list[str]:
    return d.execute_script(LAYOUT_PROBLEMS_JS)


def heatmap(d) -> dict | None:
    """The (first shown) given × predicted heatmap: its x and y tick labels and its plot
    area's size in CSS pixels."""
    return d.execute_script(
        "for (const p of document.querySelectorAll('.js-plotly-plot')) {"
        "  const t = p.querySelector('.gtitle'); const r = p.getBoundingClientRect();"
        "  if (t && t.textContent.startsWith('Given label × predicted') && r.width > 0) {"
        "    const a = p.querySelector('.nsewdrag').getBoundingClientRect();"
        "    return {x: [...p.querySelectorAll('.xtick text')].map(e => e.textContent),"
        "            y: [...p.querySelectorAll('.ytick text')].map(e => e.textContent),"
        "            width: a.width, height: a.height}; } }"
        "return null;")


def open_tab(d, name: str) -> None:
    tab = WebDriverWait(d, PAGE_WAIT).until(EC.element_to_be_clickable(
        (By.XPATH, f"//*[@role='tab'][normalize-space(.)={xpath_str(name)}]")))
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", tab)
    tab.click()
    settle(d, 1.5)


def charts_drawn(d, n: int = 1) -> None:
    WebDriverWait(d, PAGE_WAIT).until(lambda _: sum(
        1 for p in d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot") if p.size["width"] > 0) >= n)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("many")
    home = tmp / "home"
    with app_server(home, tmp / "server.log") as url, chrome(tmp) as d:
        yield {"url": url, "home": home, "tmp": tmp, "driver": d}


def check_train_page(d, url: str, run_id: str, k: int, names: list[str], counts: np.ndarray,
                     pair: tuple[int, int]) -> None:
    d.get(f"{url}/Train?run={run_id}")
    wait_for_text(d, "Loss histograms")
    charts_drawn(d)
    settle(d, 2)
    problems = layout_problems(d)
    shot(d, f"train-k{k}-histograms")
    open_tab(d, "Given × predicted")
    if k > 12:
        wait_for_text(d, "Most confused pairs")
        exp = WebDriverWait(d, PAGE_WAIT).until(EC.element_to_be_clickable(
            (By.XPATH, "//summary[.//*[contains(normalize-space(.), 'Heatmaps (confused classes side by side)')]]")))
        d.execute_script("arguments[0].scrollIntoView({block: 'center'})", exp)
        exp.click()
        settle(d, 2)
    WebDriverWait(d, PAGE_WAIT).until(lambda _: heatmap(d))
    hm = heatmap(d)
    # up to a dozen classes all are drawn; above, the most confused ones (a class picker
    # adds others), the most confused pair among them
    drawn = names if k <= 12 else [names[c] for c in charts.most_confused_classes(counts)]
    assert names[pair[0]] in drawn and names[pair[1]] in drawn
    if k <= 12 and max(map(len, names)) <= charts.HEATMAP_COLUMN_NAME_CHARS:  # named, in full, on both axes
        for axis in ("x", "y"):
            assert sorted(hm[axis]) == sorted(drawn), (k, axis, len(hm[axis]))
    else:  # rows "full name · j", columns numbered as the rows
        assert sorted(t.rsplit(" · ", 1)[0] for t in hm["y"]) == sorted(drawn), (k, len(hm["y"]))
        assert [t.rsplit(" · ", 1)[1] for t in hm["y"]] == [str(j + 1) for j in range(len(drawn))]
        assert sorted(hm["x"], key=int) == [str(j + 1) for j in range(len(drawn))]
    # cells big enough to see and to point at: at least 10 x 10 px
    assert hm["width"] / len(drawn) >= 10 and hm["height"] / len(drawn) >= 10, (k, hm["width"], hm["height"])
    problems += layout_problems(d)
    shot(d, f"train-k{k}-given-x-predicted")
    for tab in ("Accuracy", "Losses and |X|, |U|"):
        open_tab(d, tab)
        charts_drawn(d)
        problems += layout_problems(d)
    assert not problems, (k, sorted(set(problems))[:20])


def text_fits(d, el) -> bool:
    """The element's text is shown whole: nothing hidden by overflow (ellipsis or clipping)."""
    return d.execute_script(
        "const e = arguments[0]; const parts = [e, ...e.querySelectorAll('*')];"
        "return parts.every(x => x.scrollWidth <= x.clientWidth + 1 || getComputedStyle(x).overflow === 'visible');",
        el)


def test_77_long_class_names_from_upload_to_review(app):
    d, url, home = app["driver"], app["url"], app["home"]
    k = 77
    names = sorted(long_names(k))  # rows in this order: sample i is of class i // 3 (the report below)
    frame = pd.DataFrame({"text": [f"customer query number {i} about {names[i // 3].replace('_', ' ')}"
                                   for i in range(3 * k)],
                          "label": [names[i // 3] for i in range(3 * k)]})
    csv_path = app["tmp"] / "banking-like.csv"
    frame.to_csv(csv_path, index=False)
    d.get(url)
    go(d, "Data")
    WebDriverWait(d, PAGE_WAIT).until(EC.presence_of_element_located((By.CSS_SELECTOR, 'input[type="file"]')))
    d.find_elements(By.CSS_SELECTOR, 'input[type="file"]')[0].send_keys(str(csv_path))
    wait_for_text(d, f"{3 * k} texts, {k} classes")
    click_button(d, "Save dataset")
    wait_for_text(d, "Saved")
    settle(d)
    shot(d, "data-k77")

    store = Store(home)
    [dataset] = store.list_datasets()
    stored = dataset["meta"]["label_names"]
    assert stored == names
    # the run's classes are the stored order; build the report in it
    run_id, given, pred, counts = confused_run(store, dataset["id"], k)
    check_train_page(d, url, run_id, k, stored, counts, (5, 6))

    # The most confused pair (class 5 -> 6: all its samples) goes to Review
    open_tab(d, "Given × predicted")
    src, dst = stored[5], stored[6]
    picker = WebDriverWait(d, PAGE_WAIT).until(EC.presence_of_element_located(
        (By.XPATH, "//input[@role='combobox'][@aria-label='Pair to review']")))
    assert (picker.get_attribute("value") or "").startswith(f"{src} → {dst}")
    click_button(d, "Review this pair")
    WebDriverWait(d, PAGE_WAIT).until(EC.presence_of_element_located((By.XPATH, "//h1[normalize-space(.)='Review']")))
    try:
        header = wait_for_text(d, f" · given {src} · suggested {dst}")
    except Exception:
        shot(d, "review-k77-failed")
        raise
    settle(d, 1.5)
    first = int(header.text.split("#", 1)[1].split(" ")[0])
    assert given[first] == 5
    body = d.find_element(By.TAG_NAME, "body").text
    assert "The model's top labels:" in body and dst in body
    accept = WebDriverWait(d, PAGE_WAIT).until(EC.presence_of_element_located(
        (By.XPATH, f"//button[.//*[normalize-space(text())={xpath_str('Accept: ' + dst)}]]")))
    keep = d.find_element(By.XPATH, f"//button[.//*[normalize-space(text())={xpath_str('Keep: ' + src)}]]")
    for button in (accept, keep):
        assert text_fits(d, button), button.text  # the full long name is visible, not cut off
        assert button.text.replace("\n", "") in (f"Accept: {dst}", f"Keep: {src}") or dst in button.text or src in button.text
    shot(d, "review-k77")
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", accept)
    accept.click()
    wait_for_text(d, "Saved 1 decision")
    decisions = store.current_decisions(run_id)
    assert list(decisions) == [first]
    assert decisions[first]["action"] == "accept" and decisions[first]["new_label"] == 6
    # the table was filtered to exactly the pair's samples
    wait_for_text(d, f"Reviewed 1 / {int((given == 5).sum())}")
    store.close()


@pytest.mark.parametrize("k", [2, 6, 300])
def test_charts_at_k_classes(app, k):
    d, url, home = app["driver"], app["url"], app["home"]
    # long names on the 2-class set (its heatmap's columns get numbered), short ones on the 6
    names = long_names(k) if k > 6 else [f"class_{i}_{STEMS[i]}" if k == 2 else f"intent_{i}" for i in range(k)]
    store = Store(home)
    ds = store.add_dataset(f"{k} classes", pd.DataFrame({"text": [f"text {i}" for i in range(3 * k)],
                                                          "label": [names[i // 3] for i in range(3 * k)]}),
                           {"text_column": "text", "label_column": "label", "true_label_column": None,
                            "label_names": names})
    run_id, _, _, counts = confused_run(store, ds, k)
    store.close()
    src = 5 if k >= 6 else 1
    check_train_page(d, url, run_id, k, names, counts, (src, (src + 1) % k))


def shot(d, name: str) -> None:
    _shot(d, SHOTS, name)
