"""studio.charts: each figure has the expected traces for a hand-built EpochReport."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import pytest

from selfmix_core.reports import DetectionMetrics, EpochReport, GMMParams
from studio import charts

NAMES = ["a", "b"]


def hand_report(with_gmm: bool = True) -> EpochReport:
    # 8 samples; losses low for clean, high for noisy. Class a: 0..3, class b: 4..7.
    norm = np.array([0.05, 0.1, 0.15, 0.9, 0.08, 0.12, 0.85, 0.95])
    given = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    gmm = GMMParams(means=(0.9, 0.1), stds=(0.05, 0.05), weights=(0.375, 0.625), clean_component=1,
                    converged=True, n_iter=5, separation=16.0) if with_gmm else None
    clean = np.where(norm < 0.5, 0.99, 0.01)
    return EpochReport(
        epoch=2, phase="selfmix", seconds=3.0, train_seconds=2.0, score_seconds=1.0, samples_trained=8,
        losses={"mix": 0.5, "pseudo": 0.2, "rdrop": 0.1, "total": 0.6}, given_label=given,
        loss=norm * 3, norm_loss=norm, clean_prob=clean, predicted_label=np.array([0, 0, 0, 1, 1, 1, 0, 0]),
        predicted_prob=np.full(8, 0.9), in_training=np.ones(8, bool), gmm=gmm, tau=0.5, n_clean=5, n_noisy=3,
        train_n_clean=5, train_n_noisy=3, test_accuracy=0.8,
        given_vs_predicted=np.array([[3, 1], [2, 2]]), given_vs_true=np.array([[3, 1], [2, 2]]),
    )


def names_of(fig: go.Figure) -> list[str]:
    return [t.name for t in fig.data]


def test_loss_histograms_traces_per_class_with_true_labels():
    report = hand_report()
    true = np.array([0, 0, 0, 1, 1, 1, 0, 0])  # samples 3, 6, 7 are mislabeled
    fig = charts.loss_histograms(report, NAMES, true, bins=10)
    per_class = ["clean samples", "noisy samples", "clean component", "noisy component", "tau boundary"]
    assert names_of(fig) == per_class * 2
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    assert sum(int(np.sum(t.y)) for t in bars) == 8
    noisy_total = sum(int(np.sum(t.y)) for t in bars if t.name == "noisy samples")
    assert noisy_total == 3
    # legend shown once per name
    assert sum(bool(t.showlegend) for t in fig.data) == len(per_class)


def test_gmm_curves_are_scaled_to_each_class():
    report = hand_report()
    report.clean_prob[:] = [0.9, 0.8, 0.7, 0.2, 1.0, 1.0, 0.0, 0.1]
    fig = charts.loss_histograms(report, NAMES, bins=10)
    assert names_of(fig) == ["samples", "clean component", "noisy component", "tau boundary"] * 2
    width = float(fig.data[0].width)
    # each curve integrates to the class's share of its component (sum of the posteriors) * bin width
    for offset, clean_share in ((0, 0.9 + 0.8 + 0.7 + 0.2), (4, 1.0 + 1.0 + 0.0 + 0.1)):
        clean_curve, noisy_curve = fig.data[offset + 1], fig.data[offset + 2]
        area = np.trapezoid(np.asarray(clean_curve.y), np.asarray(clean_curve.x))
        assert area == pytest.approx(clean_share * width, rel=0.02)
        area = np.trapezoid(np.asarray(noisy_curve.y), np.asarray(noisy_curve.x))
        assert area == pytest.approx((4 - clean_share) * width, rel=0.02)


def test_tau_boundary_is_where_the_posterior_crosses_tau():
    report = hand_report()
    b = charts.tau_boundary(report.gmm, 0.5, 0.0, 1.0)
    # equal stds: w_c N(x; 0.1) = w_n N(x; 0.9)  <=>  x = 0.5 + s^2 log(w_c / w_n) / 0.8
    assert b == pytest.approx(0.5 + 0.05**2 * math.log(0.625 / 0.375) / 0.8, abs=1e-4)
    post = charts.gmm_posterior_clean(np.array([b]), report.gmm)[0]
    assert post == pytest.approx(0.5, abs=1e-3)
    fig = charts.loss_histograms(report, NAMES)
    tau_line = [t for t in fig.data if t.name == "tau boundary"][0]
    assert tau_line.x[0] == tau_line.x[1] == pytest.approx(b)
    assert charts.tau_boundary(report.gmm, 0.5, 0.0, 0.2) is None  # no crossing in range


def test_loss_histograms_can_limit_the_classes_drawn():
    report = hand_report()
    report.given_label[:] = [0, 1, 1, 1, 1, 1, 1, 1]
    fig = charts.loss_histograms(report, NAMES, max_classes=1)
    assert names_of(fig) == ["samples", "clean component", "noisy component", "tau boundary"]
    assert "given b (n=7)" in [a.text for a in fig.layout.annotations]


def test_loss_histograms_without_gmm_has_only_bars():
    fig = charts.loss_histograms(hand_report(with_gmm=False), NAMES)
    assert names_of(fig) == ["samples", "samples"]


def test_confusion_heatmap_row_normalised_with_counts():
    fig = charts.confusion_heatmap(np.array([[3, 1], [0, 0]]), NAMES, "Given × predicted")
    assert len(fig.data) == 1 and isinstance(fig.data[0], go.Heatmap)
    z = np.asarray(fig.data[0].z)
    assert z[0].tolist() == [0.75, 0.25]
    assert z[1].tolist() == [0.0, 0.0]  # an empty row stays 0
    assert np.asarray(fig.data[0].customdata).tolist() == [[3, 1], [0, 0]]


def summaries() -> list[dict]:
    out = []
    for e, acc in enumerate([0.5, 0.8, 0.7], start=1):
        s = hand_report().scalars_dict()
        s.update(epoch=e, test_accuracy=acc, phase="warmup" if e == 1 else "selfmix",
                 losses={"ce": 1.0} if e == 1 else {"mix": 0.5, "pseudo": 0.2, "rdrop": 0.1, "total": 0.6},
                 detection=DetectionMetrics(0.6, 0.7, 0.65, 0.9, 5, 3).to_dict(), n_clean=10 + e, n_noisy=5 - e)
        out.append(s)
    return out


def test_accuracy_figure_marks_best_and_last():
    fig = charts.accuracy_figure(summaries())
    names = names_of(fig)
    assert names[:3] == ["test accuracy", "best", "last"]
    for n in ("detection precision", "detection recall", "detection AUROC"):
        assert n in names
    best = fig.data[1]
    assert list(best.x) == [2] and list(best.y) == [0.8]
    last = fig.data[2]
    assert list(last.x) == [3] and list(last.y) == [0.7]


def test_accuracy_figure_without_test_or_truth_is_empty():
    s = [{"epoch": 1, "test_accuracy": None, "detection": None}]
    assert len(charts.accuracy_figure(s).data) == 0


def test_loss_components_and_split_sizes():
    fig = charts.loss_components_figure(summaries())
    assert names_of(fig) == [charts.LOSS_LABELS[k] for k in ("ce", "mix", "pseudo", "rdrop", "total")]
    assert list(fig.data[0].x) == [1] and list(fig.data[1].x) == [2, 3]
    split = charts.split_sizes_figure(summaries())
    assert names_of(split) == ["|X| clean", "|U| noisy"]
    assert list(split.data[0].y) == [11, 12, 13] and list(split.data[1].y) == [4, 3, 2]


def test_class_counts_figure():
    fig = charts.class_counts_figure({"a": 3, "b": 5}, {"a": 4, "b": 4}, names=("noisy", "original"))
    assert names_of(fig) == ["noisy", "original"]
    assert list(fig.data[0].y) == [3, 5]


def test_accuracy_figure_held_out_curve_and_recommended_epoch():
    s = summaries()
    for e, val in zip((1, 2, 3), (0.6, 0.75, 0.7)):
        s[e - 1].update(val_accuracy=val, n_val=20, recommended_epoch=2)
    fig = charts.accuracy_figure(s, recommended=2)
    [held] = [t for t in fig.data if t.name == charts.HELD_OUT_NAME]
    assert list(held.x) == [1, 2, 3] and list(held.y) == [0.6, 0.75, 0.7]
    [line] = fig.layout.shapes
    assert line.x0 == line.x1 == 2
    assert [a.text for a in fig.layout.annotations] == ["recommended"]
    assert fig.layout.title.text == "Test accuracy, held-out agreement and flip detection"  # true labels known
    for make in (charts.loss_components_figure, charts.split_sizes_figure):
        assert [sh.x0 for sh in make(s, recommended=2).layout.shapes] == [2]
    assert not charts.accuracy_figure(s).layout.shapes  # nothing marked without a recommendation


def test_accuracy_figure_title_is_true_without_true_labels():
    s = [{"epoch": e, "val_accuracy": v, "test_accuracy": None, "detection": None} for e, v in ((1, 0.5), (2, 0.6))]
    fig = charts.accuracy_figure(s, recommended=2)
    assert names_of(fig) == [charts.HELD_OUT_NAME]
    title = fig.layout.title.text
    assert title == "Held-out agreement with the given labels"
    s[1]["test_accuracy"] = 0.7
    title = charts.accuracy_figure(s).layout.title.text
    assert title.startswith("Test accuracy") and "flip" not in title.lower()
    # nothing to draw: no line either (the page says there is nothing to plot)
    assert not charts.accuracy_figure([{"epoch": 1}], recommended=1).layout.shapes


# ---- many classes (Banking77 has 77 intents with long names) -------------------------------

LONG = "direct_debit_payment_not_recognised"


def k_report(k: int, n_per: int = 4, seed: int = 0) -> tuple[EpochReport, list[str]]:
    rng = np.random.default_rng(seed)
    n = k * n_per
    given = np.repeat(np.arange(k), n_per)
    norm = rng.random(n)
    pred = np.where(rng.random(n) < 0.7, given, rng.integers(0, k, n))
    gmm = GMMParams(means=(0.8, 0.2), stds=(0.1, 0.1), weights=(0.3, 0.7), clean_component=1,
                    converged=True, n_iter=5, separation=6.0)
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (given, pred), 1)
    report = EpochReport(
        epoch=1, phase="warmup", seconds=1.0, train_seconds=1.0, score_seconds=0.0, samples_trained=n,
        losses={"ce": 1.0}, given_label=given, loss=norm, norm_loss=norm, clean_prob=1 - norm,
        predicted_label=pred, predicted_prob=np.full(n, 0.5), in_training=np.ones(n, bool), gmm=gmm, tau=0.5,
        n_clean=n // 2, n_noisy=n - n // 2, given_vs_predicted=counts,
    )
    names = [f"{LONG}_{i}" if i % 2 else f"c{i}" for i in range(k)]
    return report, names


def legend_below(fig: go.Figure) -> None:
    leg = fig.layout.legend
    assert leg.yanchor == "top" and leg.y is not None and leg.y < 0  # under the plot, never over the title


@pytest.mark.parametrize("k", [2, 6, 77, 300])
def test_loss_histograms_scale_with_k(k):
    report, names = k_report(k)
    picked = list(range(min(k, 12)))
    fig = charts.loss_histograms(report, names, classes=picked)
    titles = [a.text for a in fig.layout.annotations]
    assert len(titles) == len(picked)
    for t in titles:  # long names wrap: no line wider than a facet holds
        assert max(len(line) for line in t.split("<br>")) <= 31
    legend_below(fig)
    rows = math.ceil(len(picked) / min(len(picked), 3))
    assert fig.layout.height >= 300 * rows
    # the first row's facet titles sit inside the top margin, below the figure title
    top = max(a.y for a in fig.layout.annotations)
    assert top == pytest.approx(1.0) and fig.layout.margin.t >= 70 + 16 * max(t.count("<br>") + 1 for t in titles)
    # facet rows do not overlap: each row's title sits in the gap above it
    ys = sorted({a.y for a in fig.layout.annotations}, reverse=True)
    plot_px = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    for hi, lo in zip(ys, ys[1:]):
        assert (hi - lo) * plot_px >= 300
    all_fig = charts.loss_histograms(report, names)  # every class: the spacing still fits
    assert len(all_fig.layout.annotations) == k


def test_loss_histograms_class_picker_order_and_bad_ids():
    report, names = k_report(6)
    fig = charts.loss_histograms(report, names, classes=[4, 1, 99, 4])
    assert [a.text.split(" (n=")[0].replace("<br>", "") for a in fig.layout.annotations] == [
        f"given {names[4]}", f"given {names[1]}"]
    assert len(charts.loss_histograms(report, names, classes=[]).layout.annotations) == 1


def test_wrap_label():
    assert charts.wrap_label("short") == "short"
    w = charts.wrap_label("given " + LONG + " (n=1,234)")
    assert w.replace("<br>", "") == "given " + LONG + " (n=1,234)"
    assert all(len(line) <= 30 for line in w.split("<br>"))
    long_word = charts.wrap_label("x" * 200, width=30, max_lines=2)
    assert long_word.count("<br>") == 1 and long_word.endswith("…")


def test_confused_pairs_sorted_with_shares():
    counts = np.array([[5, 3, 0], [1, 4, 0], [0, 3, 2]])
    df = charts.confused_pairs(counts, ["a", "b", "c"])
    assert list(df.columns) == ["given", "predicted", "given_id", "predicted_id", "count", "share_of_given",
                                "share_of_confusions"]
    assert list(zip(df["given"], df["predicted"], df["count"])) == [("c", "b", 3), ("a", "b", 3), ("b", "a", 1)]
    assert df["share_of_given"].tolist() == pytest.approx([3 / 5, 3 / 8, 1 / 5])
    assert df["share_of_confusions"].sum() == pytest.approx(1.0)
    assert len(charts.confused_pairs(counts, ["a", "b", "c"], top=1)) == 1
    empty = charts.confused_pairs(np.eye(3, dtype=int), ["a", "b", "c"])
    assert empty.empty and "count" in empty.columns
    with pytest.raises(ValueError):
        charts.confused_pairs(counts, ["a", "b"])


def test_confusion_order_puts_confused_classes_together():
    k = 8
    counts = np.eye(k, dtype=int) * 10
    counts[0, 5] = counts[5, 0] = 6  # 0 and 5 confused; 2 and 7 confused
    counts[2, 7] = 4
    order = charts.confusion_order(counts)
    assert sorted(order) == list(range(k))
    assert abs(order.index(0) - order.index(5)) == 1 and abs(order.index(2) - order.index(7)) == 1
    assert charts.confusion_order(np.eye(2)) == [0, 1]


@pytest.mark.parametrize("k", [2, 6, 77, 300])
def test_confusion_heatmap_scales_with_k(k):
    report, names = k_report(k)
    fig = charts.confusion_heatmap(report.given_vs_predicted, names, "Given × predicted")
    hm = fig.data[0]
    assert np.asarray(hm.z).shape == (k, k)
    assert list(hm.x) == list(hm.y) and sorted(hm.x) == sorted(names)  # full names, one order on both axes
    cell = (fig.layout.height - 60) / k
    assert cell >= 14 - 1e-9 or fig.layout.height == 320
    assert fig.layout.width is None  # the column's: Streamlit squeezes a wider figure into it
    assert (hm.texttemplate is not None) == (k <= charts.HEATMAP_TEXT_MAX_K)
    # reordered rows are the same counts: each row's customdata sums to its class's row total
    totals = dict(zip(names, report.given_vs_predicted.sum(axis=1)))
    assert [int(np.sum(r)) for r in np.asarray(hm.customdata)] == [totals[n] for n in hm.y]
    assert fig.layout.title.yref == "container" and fig.layout.margin.t >= 50


@pytest.mark.parametrize("k", [2, 6, 77, 300])
def test_confusion_heatmap_draws_the_most_confused_classes(k):
    report, names = k_report(k)
    counts = report.given_vs_predicted
    picked = charts.most_confused_classes(counts)
    assert len(picked) == min(k, charts.HEATMAP_MAX_CLASSES) and len(set(picked)) == len(picked)
    off = counts.copy()
    np.fill_diagonal(off, 0)
    involvement = off.sum(axis=0) + off.sum(axis=1)
    assert min(involvement[picked]) >= max(np.delete(involvement, picked), default=0)  # none left out is more confused
    fig = charts.confusion_heatmap(counts, names, "Given × predicted", classes=picked)
    hm = fig.data[0]
    assert sorted(hm.y) == sorted(names[c] for c in picked) and list(hm.x) == list(hm.y)
    # a drawn cell is the share of the whole row, classes not drawn included
    ids = {n: i for i, n in enumerate(names)}
    z = np.asarray(hm.z)
    for r, gname in enumerate(hm.y):
        row = counts[ids[gname]]
        for c, pname in enumerate(hm.x):
            assert z[r, c] == pytest.approx(row[ids[pname]] / row.sum())
    assert (fig.layout.height - 60) / len(picked) >= 14 - 1e-9 or fig.layout.height == 320


def test_most_confused_classes_order_and_bad_input():
    counts = np.eye(5, dtype=int) * 9
    counts[3, 1] = 4
    counts[2, 4] = 1
    assert charts.most_confused_classes(counts, top=3) == [1, 3, 2]  # 1 and 3 (4 each), then 2 and 4 by id
    assert charts.most_confused_classes(counts, top=10) == [1, 3, 2, 4, 0]
    with pytest.raises(ValueError):
        charts.most_confused_classes(np.ones((2, 3)))
    with pytest.raises(ValueError):
        charts.most_confused_classes(counts, top=0)
    fig = charts.confusion_heatmap(counts, list("abcde"), "t", classes=[9, 3, 3, -1, 1])  # bad ids ignored
    assert list(fig.data[0].y) == ["d", "b"]


@pytest.mark.parametrize("k", [2, 6, 77, 300])
def test_curve_figures_keep_legends_below(k):
    s = summaries()
    for make in (charts.loss_components_figure, charts.split_sizes_figure, charts.accuracy_figure):
        fig = make(s, recommended=2)
        legend_below(fig)
        assert fig.layout.margin.t <= 60  # no room reserved above for a legend: nothing sits over the title
    report, names = k_report(k)
    df = charts.confused_pairs(report.given_vs_predicted, names, top=50)
    assert len(df) <= 50 and (df["given_id"] != df["predicted_id"]).all()


@pytest.mark.parametrize("k", [2, 6, 77, 300])
def test_class_counts_figure_scales_with_k(k):
    _, names = k_report(k)
    counts = {n: i + 1 for i, n in enumerate(names)}
    fig = charts.class_counts_figure(counts, {n: 2 for n in names})
    assert names_of(fig) == ["given labels", "true labels"]
    bars = fig.data[0]
    if k > charts.CLASS_BARS_HORIZONTAL_K:
        assert bars.orientation == "h" and list(bars.y) == names and list(bars.x) == list(range(1, k + 1))
        assert fig.layout.height >= 18 * 2 * k  # a row per class and trace
    else:
        assert list(bars.x) == names and list(bars.y) == list(range(1, k + 1))
    legend_below(fig)
