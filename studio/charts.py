"""Plotly figures drawn from EpochReports and epoch summaries. Pure functions: no
Streamlit, no store; each takes plain data and returns a `go.Figure`, so they are
tested on hand-built reports.

    loss_histograms(report, label_names, true_labels)  per-class loss histograms + GMM
    confusion_heatmap(counts, label_names, ...)         given x predicted / given x true
    most_confused_classes(counts, top)                  the classes a many-class heatmap draws
    confused_pairs(counts, label_names)                 the most confused (given, predicted) pairs
    confusion_order(counts)                             a class order that puts confused classes together
    accuracy_figure(summaries)                          test accuracy, detection metrics
    loss_components_figure(summaries)                   training loss components
    split_sizes_figure(summaries)                       |X| and |U| per epoch
    class_counts_figure(counts)                         bar chart for the Data page

`summaries` are the dicts Store.list_epoch_summaries() returns (EpochReport.scalars_dict()).
Trace names are stable (tests look them up): see each function.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .text import plot

CLEAN_COLOR = "#2a9d8f"
NOISY_COLOR = "#e76f51"
ALL_COLOR = "#6c8ebf"
CLEAN_CURVE = "#1d6f65"
NOISY_CURVE = "#b5452a"
TAU_COLOR = "#444444"
_MAX_FACET_COLS = 3
_FACET_TITLE_CHARS = 30  # a facet title wraps at about this many characters per line
LEGEND_BELOW = dict(orientation="h", yanchor="top", y=-0.22, x=0, xanchor="left")  # never over a title


def wrap_label(text: str, width: int = _FACET_TITLE_CHARS, max_lines: int = 3) -> str:
    """`text` broken into lines of at most about `width` characters (Plotly's "<br>"), at
    spaces or underscores (intent names like direct_debit_payment_not_recognised); a
    word longer than `width` is cut; more than `max_lines` lines end in "…". Already
    escaped text (studio.text.plot) is expected: only the line breaks are added."""
    text = str(text)
    if len(text) <= width:
        return text
    parts = re.split(r"(?<=[ _])", text)  # keep the separator at the end of each part
    lines, cur = [], ""
    for part in parts:
        while len(part) > width:  # one long word: cut it
            if cur:
                lines.append(cur)
                cur = ""
            lines.append(part[:width])
            part = part[width:]
        if len(cur) + len(part.rstrip()) > width and cur:
            lines.append(cur)
            cur = ""
        cur += part
    if cur:
        lines.append(cur)
    lines = [ln.rstrip() for ln in lines if ln.strip()]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(1, width - 1)] + "…"
    return "<br>".join(lines)


# ---- the GMM on the losses ------------------------------------------------------------------


def _gaussian_pdf(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    std = max(float(std), 1e-9)
    z = (x - float(mean)) / std
    return np.exp(-0.5 * z * z) / (std * math.sqrt(2.0 * math.pi))


def gmm_posterior_clean(x: np.ndarray, gmm: Any) -> np.ndarray:
    """P(clean component | loss x) under the fitted 2-component GMM."""
    c = int(gmm.clean_component)
    o = 1 - c
    pc = gmm.weights[c] * _gaussian_pdf(x, gmm.means[c], gmm.stds[c])
    po = gmm.weights[o] * _gaussian_pdf(x, gmm.means[o], gmm.stds[o])
    total = pc + po
    with np.errstate(invalid="ignore", divide="ignore"):
        post = np.where(total > 0, pc / np.where(total > 0, total, 1.0), np.where(x < gmm.means[c], 1.0, 0.0))
    return post


def tau_boundary(gmm: Any, tau: float, lo: float, hi: float, points: int = 4001) -> float | None:
    """The loss value where the clean posterior falls through tau, searched in [lo, hi].

    The posterior of two Gaussians can cross tau twice (when the noisy component is the
    narrower one); the crossing between the two means is returned when there is one,
    else the first crossing in the range, else None (no crossing in [lo, hi]).
    """
    if gmm is None or not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return None
    x = np.linspace(lo, hi, points)
    d = gmm_posterior_clean(x, gmm) - float(tau)
    sign = np.sign(d)
    cross = np.flatnonzero(sign[:-1] * sign[1:] < 0)
    if cross.size == 0:
        exact = np.flatnonzero(d == 0)
        return float(x[exact[0]]) if exact.size else None
    roots = []
    for i in cross:  # linear interpolation between the two grid points
        x0, x1, d0, d1 = x[i], x[i + 1], d[i], d[i + 1]
        roots.append(float(x0 - d0 * (x1 - x0) / (d1 - d0)))
    c = int(gmm.clean_component)
    m_lo, m_hi = sorted((float(gmm.means[c]), float(gmm.means[1 - c])))
    between = [r for r in roots if m_lo <= r <= m_hi]
    return between[0] if between else roots[0]


def _bins(values: np.ndarray, nbins: int) -> np.ndarray:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.linspace(0.0, 1.0, nbins + 1)
    lo, hi = float(finite.min()), float(finite.max())
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, nbins + 1)


def loss_histograms(
    report: Any,
    label_names: Sequence[str],
    true_labels: np.ndarray | None = None,
    bins: int = 30,
    title: str | None = None,
    max_classes: int | None = None,
    classes: Sequence[int] | None = None,
) -> go.Figure:
    """Per given class, a histogram of the normalised per-sample loss (the value the
    GMM is fitted on), the two fitted Gaussian components over it and the tau boundary.

    Scaling: over all samples, component k's expected histogram is weight_k * pdf_k(x) *
    n * bin_width, and weight_k * n is the component's share of the samples (the sum of
    the samples' posteriors for k). The GMM is fitted on all classes together, so in the
    subplot of class c each component is scaled by THAT CLASS'S share of it: the sum over
    the class's samples of their posterior for k (clean_prob for the clean component,
    1 - clean_prob for the other). The curves then integrate to the class's expected
    counts per component and sit on its bars. With `true_labels` ((N,) ids) the bars are
    split into clean (given == true) and noisy samples; otherwise one bar series.

    Trace names: "clean samples" / "noisy samples" (or "samples"), "clean component",
    "noisy component", "tau boundary" -- one of each per class subplot (legend shown once).
    max_classes: draw only this many classes, the largest ones (None = all).
    classes: the class ids to draw, in this order (overrides max_classes; ids out of
        range are ignored; an empty list draws the largest class).
    Layout: at most 3 facets a row, each 300 px tall plus the lines of its title (long
    class names wrap, see wrap_label; the full name is in the bars' hover); the gaps
    between rows are fixed in pixels, so any number of classes fits; the legend sits
    below the plot, never over the title.
    """
    names = [str(n) for n in label_names]
    k = len(names)
    norm = np.asarray(report.norm_loss, dtype=np.float64)
    clean_prob = np.asarray(report.clean_prob, dtype=np.float64)
    given = np.asarray(report.given_label, dtype=np.int64)
    ok = np.isfinite(norm) & np.asarray(report.in_training, dtype=bool)
    edges = _bins(norm[ok], bins)
    width = float(edges[1] - edges[0])
    centers = 0.5 * (edges[:-1] + edges[1:])
    gmm = report.gmm
    x_lo, x_hi = float(edges[0]), float(edges[-1])
    if gmm is not None:  # draw the whole of both components, not only the data's range
        x_lo = min(x_lo, *(m - 4 * s for m, s in zip(gmm.means, gmm.stds)))
        x_hi = max(x_hi, *(m + 4 * s for m, s in zip(gmm.means, gmm.stds)))
        span = float(edges[-1] - edges[0])  # ...within reason: a collapsed, very wide component
        x_lo, x_hi = max(x_lo, float(edges[0]) - 0.25 * span), min(x_hi, float(edges[-1]) + 0.25 * span)
    xs = np.linspace(x_lo, x_hi, 400)
    boundary = tau_boundary(gmm, report.tau, x_lo, x_hi) if gmm is not None else None
    true = None if true_labels is None else np.asarray(true_labels, dtype=np.int64)

    counts = np.bincount(given[ok], minlength=k)[:k].tolist() if ok.any() else [0] * k
    shown = list(range(k))
    if classes is not None:
        shown = list(dict.fromkeys(int(c) for c in classes if 0 <= int(c) < k))
        if not shown and k:
            shown = [max(range(k), key=lambda c: counts[c])]
    elif max_classes is not None and k > max_classes:
        shown = sorted(sorted(range(k), key=lambda c: -counts[c])[:max_classes])
    cols = max(1, min(len(shown), _MAX_FACET_COLS))
    rows = max(1, math.ceil(len(shown) / cols))
    titles = [wrap_label(f"given {plot(names[c])} (n={counts[c]:,})") for c in shown]
    title_lines = max([t.count("<br>") + 1 for t in titles] + [1])
    row_px, gap_px = 300, 50 + 16 * title_lines  # each row's title sits in the gap above it
    plot_px = rows * row_px + (rows - 1) * gap_px
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=titles,
        horizontal_spacing=0.06,
        vertical_spacing=gap_px / plot_px if rows > 1 else 0.0,
    )
    for pos, c in enumerate(shown):
        r, col = pos // cols + 1, pos % cols + 1
        first = pos == 0
        in_c = ok & (given == c)
        if true is not None:
            series = [
                ("clean samples", in_c & (true == given), CLEAN_COLOR),
                ("noisy samples", in_c & (true != given), NOISY_COLOR),
            ]
        else:
            series = [("samples", in_c, ALL_COLOR)]
        for name, mask, color in series:
            h, _ = np.histogram(norm[mask], bins=edges)
            fig.add_trace(
                go.Bar(
                    x=centers,
                    y=h,
                    width=width,
                    name=name,
                    legendgroup=name,
                    showlegend=first,
                    marker=dict(color=color, line=dict(width=0)),
                    opacity=0.85,
                    hovertemplate=f"given {plot(names[c])}<br>" + "loss %{x:.3f}<br>%{y} samples<extra>" + name + "</extra>",
                ),
                row=r,
                col=col,
            )
        n_c = counts[c]
        ymax = 1.0
        if gmm is not None and n_c > 0:
            ci = int(gmm.clean_component)
            post = clean_prob[in_c]
            post = post[np.isfinite(post)]
            share = {ci: float(post.sum()), 1 - ci: float((1.0 - post).sum())}  # class c's share of each component
            for comp, name, color in ((ci, "clean component", CLEAN_CURVE), (1 - ci, "noisy component", NOISY_CURVE)):
                y = share[comp] * _gaussian_pdf(xs, gmm.means[comp], gmm.stds[comp]) * width
                ymax = max(ymax, float(np.nanmax(y)) if y.size else 1.0)
                fig.add_trace(
                    go.Scatter(
                        x=xs,
                        y=y,
                        mode="lines",
                        name=name,
                        legendgroup=name,
                        showlegend=first,
                        line=dict(color=color, width=2),
                        hovertemplate="loss %{x:.3f}<br>expected %{y:.1f}<extra>" + name + "</extra>",
                    ),
                    row=r,
                    col=col,
                )
        hist_max = float(np.histogram(norm[in_c], bins=edges)[0].max()) if in_c.any() else 1.0
        top = max(ymax, hist_max) * 1.05
        if boundary is not None:
            fig.add_trace(
                go.Scatter(
                    x=[boundary, boundary],
                    y=[0, top],
                    mode="lines",
                    name="tau boundary",
                    legendgroup="tau boundary",
                    showlegend=first,
                    line=dict(color=TAU_COLOR, width=1.5, dash="dash"),
                    hovertemplate=f"clean probability = tau ({report.tau:g}) at loss {boundary:.3f}<extra></extra>",
                ),
                row=r,
                col=col,
            )
    top_px, bottom_px = 70 + 16 * title_lines, 110  # the title, the first row's facet titles; x title and legend
    fig.update_layout(
        barmode="stack",
        bargap=0,
        title=dict(text=title or f"Epoch {report.epoch} ({report.phase}): normalised loss per given class",
                   y=1.0, yref="container", yanchor="top", pad=dict(t=12)),
        height=plot_px + top_px + bottom_px,
        margin=dict(l=40, r=20, t=top_px, b=bottom_px),
        legend=dict(orientation="h", yanchor="top", y=-(60 / plot_px), x=0, xanchor="left"),
    )
    fig.update_annotations(font_size=12)  # the facet titles
    fig.update_xaxes(title_text="normalised loss (low = fits its label)", title_standoff=4, row=rows)
    return fig


# ---- confusion matrices (rows: given labels) -------------------------------------------------


def confused_pairs(counts: np.ndarray, label_names: Sequence[str], top: int | None = None) -> pd.DataFrame:
    """The off-diagonal cells of a (K, K) given x predicted count matrix as a list, most
    confused first: one row per (given, predicted) pair with given != predicted and a
    count above 0, sorted by count (then by share, then given, predicted id).

    Columns: given, predicted (names), given_id, predicted_id (ints), count (int),
    share_of_given (count / the given class's row total: P(predicted | given)),
    share_of_confusions (count / all off-diagonal counts). `top`: keep the first `top`
    rows (None = all). An all-diagonal or empty matrix gives an empty frame with these
    columns."""
    m = np.asarray(counts, dtype=np.int64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"counts must be a square (K, K) matrix, got shape {m.shape}")
    k = m.shape[0]
    names = [str(n) for n in label_names]
    if len(names) != k:
        raise ValueError(f"{len(names)} label names for a {k} x {k} matrix")
    rows_total = m.sum(axis=1)
    off = m.copy()
    np.fill_diagonal(off, 0)
    g, p = np.nonzero(off > 0)
    c = off[g, p]
    share = c / np.maximum(rows_total[g], 1)
    total_off = int(off.sum())
    order = np.lexsort((p, g, -share, -c))
    g, p, c, share = g[order], p[order], c[order], share[order]
    if top is not None:
        g, p, c, share = g[:top], p[:top], c[:top], share[:top]
    return pd.DataFrame({
        "given": [names[i] for i in g],
        "predicted": [names[j] for j in p],
        "given_id": g.astype(np.int64),
        "predicted_id": p.astype(np.int64),
        "count": c.astype(np.int64),
        "share_of_given": share.astype(np.float64),
        "share_of_confusions": (c / total_off if total_off else c * 0.0).astype(np.float64),
    })


def confusion_order(counts: np.ndarray) -> list[int]:
    """A permutation of the K classes that puts classes confused with each other next
    to each other: a greedy chain on the symmetric confusion (C + C^T, diagonal 0). It
    starts at the most confused pair and appends, each time, the class most confused
    with the classes placed so far (the last placed counts double); classes confused
    with nothing placed start a new chain at the next most confused class. Ties: the
    lower class id. Deterministic; O(K^2)."""
    m = np.asarray(counts, dtype=np.float64)
    k = m.shape[0]
    if k <= 2:
        return list(range(k))
    sym = m + m.T
    np.fill_diagonal(sym, 0.0)
    placed: list[int] = []
    left = np.ones(k, dtype=bool)
    pull = np.zeros(k)  # confusion of each class with the classes placed so far
    involvement = sym.sum(axis=1)
    while left.any():
        score = pull + (sym[placed[-1]] if placed else 0.0)
        score = np.where(left, score, -1.0)
        if not placed or score.max() <= 0:
            cand = np.where(left, involvement, -1.0)  # a new chain: the most confused class left
            nxt = int(np.argmax(cand))
        else:
            nxt = int(np.argmax(score))
        placed.append(nxt)
        left[nxt] = False
        pull += sym[nxt]
    return placed


HEATMAP_TEXT_MAX_K = 20  # above this many classes the cells are too small for their share
# Classes a heatmap draws by default above a dozen: at 30, a 77-class set's long names
# (300 px) leave columns of about 15 px in the Train page's 930-px column.
HEATMAP_MAX_CLASSES = 30
HEATMAP_COLUMN_NAME_CHARS = 16  # longer class names: the heatmap's columns are numbered


def most_confused_classes(counts: np.ndarray, top: int = HEATMAP_MAX_CLASSES) -> list[int]:
    """Up to `top` class ids of a (K, K) given x predicted count matrix, those most involved
    in confusions (off-diagonal counts of their row plus their column), most involved
    first; ties by class id. Classes confused with nothing come last, so a matrix with
    fewer than `top` confused classes is filled up with the others (by id)."""
    m = np.asarray(counts, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"counts must be a square (K, K) matrix, got shape {m.shape}")
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    off = m.copy()
    np.fill_diagonal(off, 0.0)
    involvement = off.sum(axis=0) + off.sum(axis=1)
    return [int(c) for c in np.lexsort((np.arange(m.shape[0]), -involvement))[:top]]


def confusion_heatmap(
    counts: np.ndarray,
    label_names: Sequence[str],
    title: str,
    x_title: str = "predicted label",
    y_title: str = "given label",
    order: Sequence[int] | bool | None = None,
    classes: Sequence[int] | None = None,
) -> go.Figure:
    """A (K, K) count matrix as a row-normalised heatmap (each row sums to 1), with the
    share written in each cell (up to HEATMAP_TEXT_MAX_K classes) and the raw count on
    hover. One go.Heatmap trace.

    With rows the given label (given x predicted, given x true) a row reads P(column | given):
    not the noise transition T[true, noisy], whose rows are the true labels.

    classes: draw only these class ids (rows and columns; e.g. most_confused_classes),
    None = all K. A row's shares stay those of the whole row (predictions of classes not
    drawn included), so a drawn row may sum to less than 1. Ids out of range or repeated
    are ignored.
    order: the drawn classes' order on both axes (a permutation of them); True = by
    confusion_order (confused classes together); None = confusion_order above a dozen
    drawn classes, else the class order. Size: each row about 60 px up to 6 classes, down
    to 18 px for many, so the figure grows in height with the classes drawn; the width
    is the column's (Streamlit caps a chart at its container's width: a wider figure is
    squeezed, 4 px a column for 77 classes on a laptop's screen, hence the class subset
    above a few dozen). The rows keep the class names at full length (wrapped in the tall
    rows of up to 6 classes); above a dozen classes, or with names longer than
    HEATMAP_COLUMN_NAME_CHARS, the columns are numbered as the rows ("name · 7") and the
    colour bar sits under the plot, so the columns get the width."""
    full = np.asarray(counts, dtype=np.float64)
    rows_total = full.sum(axis=1, keepdims=True)
    full_share = np.divide(full, rows_total, out=np.zeros_like(full), where=rows_total > 0)
    if classes is None:
        ids = list(range(full.shape[0]))
    else:
        ids = list(dict.fromkeys(int(c) for c in classes if 0 <= int(c) < full.shape[0])) or [0]
    k = len(ids)
    if order is None:
        order = k > 12
    if order is True:
        perm = [ids[i] for i in confusion_order(full[np.ix_(ids, ids)])]
    elif order is False:
        perm = ids
    else:
        perm = [int(i) for i in order]
    m = full[np.ix_(perm, perm)]
    share = full_share[np.ix_(perm, perm)]
    names = [plot(label_names[i]) for i in perm]  # Plotly reads <a>, <b>, ... in labels: show them as text
    cell = 60 if k <= 6 else max(18, int(round(360 / k))) if k > 25 else 36
    longest = max([len(n) for n in names] + [1])
    label_px = min(320, 7 * longest + 20)  # room for the class names beside and below
    # Columns numbered as the rows when the names would not fit side by side: above a
    # dozen classes, or names longer than a 60-px column holds
    numbered = k > 12 or longest > HEATMAP_COLUMN_NAME_CHARS
    plot_px = max(200, cell * k)
    text = k <= HEATMAP_TEXT_MAX_K
    fig = go.Figure(
        go.Heatmap(
            z=share,
            x=names,
            y=names,
            zmin=0.0,
            zmax=1.0,
            colorscale="Blues",
            customdata=m.astype(np.int64),
            texttemplate="%{z:.0%}" if text else None,
            hovertemplate=(
                f"{y_title} %{{y}}<br>{x_title} %{{x}}<br>%{{z:.1%}} of the row"
                "<br>%{customdata:,} samples<extra></extra>"
            ),
            colorbar=(dict(title=dict(text="share of row", side="right"), tickformat=".0%",
                           len=min(1.0, 400 / max(1, cell * k))) if not numbered else
                      # under the plot, not beside it: the columns need the width
                      dict(title=dict(text="share of row", side="top"), tickformat=".0%", orientation="h",
                           x=0.5, xanchor="center", y=-75 / plot_px, yanchor="top", len=0.5, thickness=12)),
            name=title,
        )
    )
    font = 12 if k <= 25 else max(8, min(11, cell - 3))
    # Numbered columns ("name · 7" on the rows, "7" under the plot): the names
    # written twice (rotated under the plot) would take half the page's width and height.
    xaxis = dict(title=x_title + (" (numbered as the rows)" if numbered else ""), side="bottom", type="category",
                 tickangle=(-90 if k > 6 and not numbered else 0), dtick=1, tickfont=dict(size=font), automargin=True)
    yaxis = dict(title=y_title, type="category", autorange="reversed", dtick=1, tickfont=dict(size=font),
                 automargin=True)
    if numbered:
        xaxis.update(tickmode="array", tickvals=names, ticktext=[str(j + 1) for j in range(k)],
                     tickangle=-90 if k >= 100 else 0)
        # a few classes have tall rows: long names wrap there (up to 3 lines)
        rows = [wrap_label(n, width=28) for n in names] if k <= 6 else names
        yaxis.update(tickmode="array", tickvals=names, ticktext=[f"{n} · {j + 1}" for j, n in enumerate(rows)])
    fig.update_layout(
        title=dict(text=title, y=1.0, yref="container", yanchor="top", pad=dict(t=12)),
        # dtick=1: every class named (Plotly's automatic ticks skip every other one above
        # ~40 classes although a cell is taller than the font)
        xaxis=xaxis,
        # no square cells (scaleanchor): in a narrower column the plot would shrink in height too
        yaxis=yaxis,
        height=plot_px + 60 + (150 if numbered else label_px if k > 6 else 60),
        margin=dict(l=60, r=20, t=60, b=150 if numbered else 60),
    )
    return fig


# ---- curves over epochs -----------------------------------------------------------------------


def _series(summaries: Sequence[Mapping[str, Any]], get) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for s in summaries:
        try:
            v = get(s)
        except (KeyError, TypeError):
            v = None
        if v is None:
            continue
        v = float(v)
        if math.isfinite(v):
            xs.append(int(s["epoch"]))
            ys.append(v)
    return xs, ys


def _epoch_axis(fig: go.Figure, summaries: Sequence[Mapping[str, Any]]) -> None:
    epochs = [int(s["epoch"]) for s in summaries]
    fig.update_xaxes(title_text="epoch", tickmode="linear", dtick=1, range=[0.5, max(epochs + [1]) + 0.5])


RECOMMENDED_COLOR = "#2a9d8f"
HELD_OUT_NAME = "held-out agreement with given labels"


def mark_recommended(fig: go.Figure, epoch: int | None) -> None:
    """A dotted vertical line at `epoch`, annotated "recommended" (nothing when None)."""
    if epoch is None:
        return
    fig.add_vline(x=int(epoch), line=dict(color=RECOMMENDED_COLOR, width=2, dash="dot"),
                  annotation_text="recommended", annotation_position="top right",
                  annotation_font_color=RECOMMENDED_COLOR)


def accuracy_figure(summaries: Sequence[Mapping[str, Any]], recommended: int | None = None) -> go.Figure:
    """Test accuracy per epoch with the best and the last epoch marked; the held-out
    slice's agreement with its GIVEN labels (`val_accuracy`: no true labels needed);
    training-set accuracy against the true labels and the detection precision / recall /
    AUROC of the flagged set when the true labels are known; the recommended epoch as a
    vertical line annotated "recommended".

    Trace names: "test accuracy", "best", "last", HELD_OUT_NAME, "test macro-F1", "train
    accuracy (true labels)", "detection precision", "detection recall", "detection
    AUROC" (each only when it has data). The title names only what is drawn.
    """
    fig = go.Figure()
    x, y = _series(summaries, lambda s: s.get("test_accuracy"))
    drawn: list[str] = []
    if x:
        drawn.append("test accuracy")
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name="test accuracy", line=dict(width=3)))
        best = int(np.argmax(y))
        fig.add_trace(
            go.Scatter(
                x=[x[best]], y=[y[best]], mode="markers+text", name="best",
                marker=dict(symbol="star", size=16, color="#f4a261"),
                text=[f"best {y[best]:.1%}"], textposition="top center",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=[x[-1]], y=[y[-1]], mode="markers+text", name="last",
                marker=dict(symbol="diamond", size=12, color="#264653"),
                text=[f"last {y[-1]:.1%}"], textposition="bottom center",
            )
        )
    x, y = _series(summaries, lambda s: s.get("val_accuracy"))
    if x:
        drawn.append("held-out agreement")
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=HELD_OUT_NAME,
                                 line=dict(width=3, color=RECOMMENDED_COLOR)))
    truth = False
    for name, get, dash in (
        ("test macro-F1", lambda s: s.get("test_macro_f1"), "dot"),
        ("train accuracy (true labels)", lambda s: s.get("train_accuracy_true"), "dot"),
        ("detection precision", lambda s: (s.get("detection") or {}).get("precision"), "dash"),
        ("detection recall", lambda s: (s.get("detection") or {}).get("recall"), "dash"),
        ("detection AUROC", lambda s: (s.get("detection") or {}).get("auroc"), "dashdot"),
    ):
        x, y = _series(summaries, get)
        if x:
            truth = truth or name != "test macro-F1"
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=name, line=dict(dash=dash)))
    if truth:
        drawn.append("flip detection")
    if drawn == ["held-out agreement"]:  # a lone trace has no legend: say what it is in the title
        drawn = ["held-out agreement with the given labels"]
    title = (", ".join(drawn[:-1]) + " and " + drawn[-1] if len(drawn) > 1 else drawn[0]) if drawn else "Accuracy"
    fig.update_layout(
        title=title[:1].upper() + title[1:],
        yaxis=dict(title="score", range=[0, 1.05], tickformat=".0%"),
        height=460,
        margin=dict(l=50, r=20, t=60, b=40),
        legend=LEGEND_BELOW,  # below: the title may be long
    )
    _epoch_axis(fig, summaries)
    if fig.data:
        mark_recommended(fig, recommended)
    return fig


LOSS_LABELS = {
    "ce": "cross-entropy (warm-up / CE)",
    "mix": "L_mix (mixup)",
    "pseudo": "L_P (pseudo-label)",
    "rdrop": "L_R (R-Drop)",
    "total": "total",
}


def loss_components_figure(summaries: Sequence[Mapping[str, Any]], recommended: int | None = None) -> go.Figure:
    """Mean training loss components per epoch; one trace per component, named as in
    LOSS_LABELS (e.g. "L_mix (mixup)"); the recommended epoch marked as in accuracy_figure."""
    fig = go.Figure()
    keys: list[str] = []
    for s in summaries:
        for key in (s.get("losses") or {}):
            if key not in keys:
                keys.append(key)
    for key in keys:
        x, y = _series(summaries, lambda s, key=key: (s.get("losses") or {}).get(key))
        if x:
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=LOSS_LABELS.get(key, key)))
    fig.update_layout(
        title="Training loss components", yaxis=dict(title="mean loss"), height=420,
        margin=dict(l=50, r=20, t=60, b=40), legend=LEGEND_BELOW,  # below: over the title it hid it and the toolbar
    )
    _epoch_axis(fig, summaries)
    mark_recommended(fig, recommended)
    return fig


def split_sizes_figure(summaries: Sequence[Mapping[str, Any]], recommended: int | None = None) -> go.Figure:
    """|X| (looks clean) and |U| (looks noisy) of each epoch's selection: two bar traces
    named "|X| clean" and "|U| noisy"; the recommended epoch marked as in accuracy_figure."""
    x = [int(s["epoch"]) for s in summaries]
    fig = go.Figure(
        [
            go.Bar(x=x, y=[int(s.get("n_clean") or 0) for s in summaries], name="|X| clean", marker_color=CLEAN_COLOR),
            go.Bar(x=x, y=[int(s.get("n_noisy") or 0) for s in summaries], name="|U| noisy", marker_color=NOISY_COLOR),
        ]
    )
    fig.update_layout(
        barmode="stack", title="Clean / noisy split per epoch (|X| and |U|)", yaxis=dict(title="samples"),
        height=420, margin=dict(l=50, r=20, t=60, b=40), legend=LEGEND_BELOW,
    )
    _epoch_axis(fig, summaries)
    mark_recommended(fig, recommended)
    return fig


CLASS_BARS_HORIZONTAL_K = 20  # above this many classes the bars lie down, one row each


def class_counts_figure(counts: Mapping[str, int], compare: Mapping[str, int] | None = None,
                        names: tuple[str, str] = ("given labels", "true labels")) -> go.Figure:
    """Samples per class (one bar trace named names[0]); with `compare`, a second trace
    named names[1] side by side (e.g. noisy vs original labels). Above
    CLASS_BARS_HORIZONTAL_K classes the bars are horizontal, one row of about 18 px per
    class (per pair with `compare`), so long class names stay readable; the legend
    sits below the plot."""
    classes = list(counts)
    if compare:
        classes += [c for c in compare if c not in counts]
    shown = [plot(c) for c in classes]  # class names as text (Plotly reads <a>, <b>, ... in labels)
    many = len(classes) > CLASS_BARS_HORIZONTAL_K
    traces = [(names[0], counts, ALL_COLOR)] + ([(names[1], compare, CLEAN_COLOR)] if compare else [])
    fig = go.Figure()
    for name, values, color in traces:
        ys = [int(values.get(c, 0)) for c in classes]
        if many:
            fig.add_trace(go.Bar(y=shown, x=ys, orientation="h", name=name, marker_color=color,
                                 hovertemplate="%{y}<br>%{x:,} samples<extra>" + name + "</extra>"))
        else:
            fig.add_trace(go.Bar(x=shown, y=ys, name=name, marker_color=color, text=ys))
    if many:
        row_px = 18 * len(traces)
        fig.update_layout(barmode="group", title="Samples per class",
                          yaxis=dict(title="class", type="category", autorange="reversed", automargin=True,
                                     tickfont=dict(size=11)),
                          xaxis=dict(title="samples", side="top"), height=row_px * len(classes) + 140,
                          margin=dict(l=50, r=20, t=90, b=40), showlegend=bool(compare), legend=LEGEND_BELOW,
                          bargap=0.15)
        fig.update_layout(legend=dict(y=-(20 / max(1, row_px * len(classes)))))
    else:
        fig.update_layout(barmode="group", title="Samples per class", xaxis=dict(title="class", type="category"),
                          yaxis=dict(title="samples"), height=320 + (60 if compare else 0),
                          margin=dict(l=50, r=20, t=50, b=40), showlegend=bool(compare), legend=LEGEND_BELOW)
    return fig


# ---- the Explore page (issue #13): figures a person selects samples from -------------------------

MAP_COLOR_BY = ("clean probability", "given label", "suggested label", "decision")
MAP_HOVER_CHARS = 160  # a hover shows this much of the text
FLAGGED_SYMBOL, UNFLAGGED_SYMBOL = "x", "circle"
_QUALITATIVE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf")


def _hover_texts(frame: pd.DataFrame) -> list[str]:
    out = []
    for i, t, g, s, d in zip(frame["sample_index"], frame["text"], frame["given_label"], frame["suggested_label"],
                             frame["action"]):
        t = str(t)
        t = t if len(t) <= MAP_HOVER_CHARS else t[:MAP_HOVER_CHARS] + "…"
        out.append(f"#{int(i)} · given {plot(g)} · suggested {plot(s)}"
                   + ("" if d == "none" else f" · {plot(d)}") + "<br>" + plot(t))
    return out


def embedding_map(xy: np.ndarray, frame: pd.DataFrame, color_by: str = "clean probability",
                  selected: Sequence[int] | None = None, hover: bool = True, height: int = 620) -> go.Figure:
    """The 2-D map of the samples (WebGL: go.Scattergl). xy: (M, 2) coordinates of the M
    rows of `frame` (a review_frame(), or the rows of it the map draws), in that order.

    color_by: one of MAP_COLOR_BY: "clean probability" (one trace, a colour scale) or a
    label / decision (one trace per value, legend entries clickable). Flagged samples are
    drawn as crosses. Every point's customdata is its sample_index (a selection event
    names samples by it). selected: sample indices to show selected (the others dimmed).
    hover=False leaves the hover texts out (faster at 100k points).
    Trace names: "samples" (clean probability) or the label / decision values.
    """
    if color_by not in MAP_COLOR_BY:
        raise ValueError(f"color_by must be one of {MAP_COLOR_BY}, got {color_by!r}")
    xy = np.asarray(xy, dtype=np.float32)
    if xy.shape != (len(frame), 2):
        raise ValueError(f"xy has shape {xy.shape}, expected ({len(frame)}, 2): one point per row of the frame")
    idx = frame["sample_index"].to_numpy(dtype=np.int64)
    flagged = frame["is_label_issue"].to_numpy(dtype=bool)
    symbols = np.where(flagged, FLAGGED_SYMBOL, UNFLAGGED_SYMBOL)
    texts = np.asarray(_hover_texts(frame), dtype=object) if hover else None
    sel_set = None if selected is None else np.isin(idx, np.asarray(list(selected), dtype=np.int64))
    fig = go.Figure()

    def add(mask: np.ndarray, name: str, marker: dict) -> None:
        pos = np.flatnonzero(mask)
        trace = go.Scattergl(
            x=xy[pos, 0], y=xy[pos, 1], mode="markers", name=name, customdata=idx[pos],
            marker=dict(size=6, symbol=symbols[pos], line=dict(width=0), **marker),
            hovertemplate="%{text}<extra></extra>" if hover else "#%{customdata}<extra></extra>",
            text=texts[pos] if texts is not None else None,
        )
        if sel_set is not None:
            trace.selectedpoints = np.flatnonzero(sel_set[pos]).tolist()
            trace.unselected = dict(marker=dict(opacity=0.15))
        fig.add_trace(trace)

    if color_by == "clean probability":
        cp = frame["clean_prob"].to_numpy(dtype=np.float64)
        add(np.ones(len(frame), dtype=bool), "samples",
            dict(color=np.nan_to_num(cp, nan=1.0), colorscale="RdYlGn", cmin=0.0, cmax=1.0, opacity=0.8,
                 colorbar=dict(title=dict(text="clean prob."), thickness=12)))
    else:
        col = {"given label": "given_label", "suggested label": "suggested_label", "decision": "action"}[color_by]
        values = frame[col].astype(object).where(frame[col].notna(), "dropped").astype(str).to_numpy()
        for j, v in enumerate(pd.unique(values)):
            add(values == v, plot(v), dict(color=_QUALITATIVE[j % len(_QUALITATIVE)], opacity=0.8))
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=30, b=10), dragmode="lasso", legend=LEGEND_BELOW,
        xaxis=dict(showticklabels=False, title=None), yaxis=dict(showticklabels=False, title=None),
        title=dict(text="Crosses: flagged samples. Lasso or box to select; click a legend entry to hide it.",
                   font=dict(size=13)),
    )
    return fig


def selectable_matrix(counts: np.ndarray, label_names: Sequence[str], height: int | None = None) -> go.Figure:
    """The given x predicted counts as one square marker per cell (a scatter, so a click
    selects a cell: plotly heatmaps cannot be selected). customdata = [given, predicted]
    class ids; colour = the row share P(predicted | given); the count is written in the
    cell up to HEATMAP_TEXT_MAX_K classes. Trace name "cells"."""
    c = np.asarray(counts, dtype=np.int64)
    k = len(label_names)
    if c.shape != (k, k):
        raise ValueError(f"counts must be ({k}, {k}) for {k} classes, got {c.shape}")
    names = [plot(n) for n in label_names]
    rows = c.sum(1, keepdims=True)
    share = np.divide(c, rows, out=np.zeros(c.shape, dtype=np.float64), where=rows > 0)
    g, p = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    g, p = g.ravel(), p.ravel()
    size = max(8, min(60, int(600 / max(k, 1))))
    fig = go.Figure(go.Scatter(
        x=[names[j] for j in p], y=[names[i] for i in g], mode="markers+text" if k <= HEATMAP_TEXT_MAX_K else "markers",
        name="cells", customdata=np.stack([g, p], 1),
        text=[f"{v:,}" for v in c.ravel()], textfont=dict(size=11),
        marker=dict(symbol="square", size=size, color=share.ravel(), colorscale="Blues", cmin=0, cmax=1,
                    colorbar=dict(title=dict(text="P(pred | given)"), thickness=12), line=dict(width=0)),
        hovertemplate="given %{y} → predicted %{x}: %{text} samples<extra></extra>",
    ))
    fig.update_layout(
        height=height or max(320, 60 + size * k + 40), margin=dict(l=10, r=10, t=40, b=10),
        title=dict(text="Given label × predicted label: click a cell to pick its samples", font=dict(size=13)),
        xaxis=dict(title="predicted label", type="category", side="top"),
        yaxis=dict(title="given label", type="category", autorange="reversed"), clickmode="event+select",
    )
    return fig


def selectable_loss_histogram(loss: np.ndarray, nbins: int = 40, title: str = "") -> go.Figure:
    """One class's per-sample losses as bars (np.histogram, `nbins` equal bins); each bar's
    customdata = [lo, hi] of its bin, so a box selection (or a click) of bars gives a loss
    range. Trace name "losses"."""
    x = np.asarray(loss, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        x = np.zeros(1)
    counts, edges = np.histogram(x, bins=max(1, int(nbins)))
    fig = go.Figure(go.Bar(
        x=(edges[:-1] + edges[1:]) / 2, y=counts, width=np.diff(edges), name="losses",
        customdata=np.stack([edges[:-1], edges[1:]], 1), marker=dict(color=ALL_COLOR),
        hovertemplate="loss %{customdata[0]:.3f}–%{customdata[1]:.3f}: %{y} samples<extra></extra>",
    ))
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=40, b=10), dragmode="select", bargap=0.02,
                      title=dict(text=plot(title) or None, font=dict(size=13)),
                      xaxis=dict(title="per-sample loss (cross-entropy of the given label)"),
                      yaxis=dict(title="samples"))
    return fig
