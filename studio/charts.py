"""Plotly figures drawn from EpochReports and epoch summaries. Pure functions: no
Streamlit, no store; each takes plain data and returns a `go.Figure`, so they are
tested on hand-built reports.

    loss_histograms(report, label_names, true_labels)  per-class loss histograms + GMM
    confusion_heatmap(counts, label_names, ...)         given x predicted / given x true
    accuracy_figure(summaries)                          test accuracy, detection metrics
    loss_components_figure(summaries)                   training loss components
    split_sizes_figure(summaries)                       |X| and |U| per epoch
    class_counts_figure(counts)                         bar chart for the Data page

`summaries` are the dicts Store.list_epoch_summaries() returns (EpochReport.scalars_dict()).
Trace names are stable (tests look them up): see each function.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
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
    if max_classes is not None and k > max_classes:
        shown = sorted(sorted(range(k), key=lambda c: -counts[c])[:max_classes])
    cols = min(len(shown), _MAX_FACET_COLS)
    rows = math.ceil(len(shown) / cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[f"given {plot(names[c])} (n={counts[c]:,})" for c in shown],
        horizontal_spacing=0.06,
        vertical_spacing=0.12 if rows > 1 else 0.08,
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
                    hovertemplate="loss %{x:.3f}<br>%{y} samples<extra>" + name + "</extra>",
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
    fig.update_layout(
        barmode="stack",
        bargap=0,
        title=title or f"Epoch {report.epoch} ({report.phase}): normalised loss per given class",
        height=300 * rows + 80,
        margin=dict(l=40, r=20, t=80, b=40),
        legend=dict(orientation="h", yanchor="bottom", y=1.06, x=0),
    )
    fig.update_xaxes(title_text="normalised loss (low = fits its label)")
    return fig


# ---- confusion matrices (rows: given labels) -------------------------------------------------


def confusion_heatmap(
    counts: np.ndarray,
    label_names: Sequence[str],
    title: str,
    x_title: str = "predicted label",
    y_title: str = "given label",
) -> go.Figure:
    """A (K, K) count matrix as a row-normalised heatmap (each row sums to 1), with the
    share written in each cell and the raw count on hover. One go.Heatmap trace.

    With rows the given label (given x predicted, given x true) a row reads P(column | given):
    not the noise transition T[true, noisy], whose rows are the true labels."""
    names = [plot(n) for n in label_names]  # Plotly reads <a>, <b>, ... in labels: show them as text
    m = np.asarray(counts, dtype=np.float64)
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    fig = go.Figure(
        go.Heatmap(
            z=share,
            x=names,
            y=names,
            zmin=0.0,
            zmax=1.0,
            colorscale="Blues",
            customdata=m.astype(np.int64),
            texttemplate="%{z:.0%}",
            hovertemplate=(
                f"{y_title} %{{y}}<br>{x_title} %{{x}}<br>%{{z:.1%}} of the row"
                "<br>%{customdata:,} samples<extra></extra>"
            ),
            colorbar=dict(title="share of row", tickformat=".0%"),
            name=title,
        )
    )
    fig.update_layout(
        title=title,
        xaxis=dict(title=x_title, side="bottom"),
        yaxis=dict(title=y_title, autorange="reversed"),
        height=max(320, 60 * len(names) + 160),
        margin=dict(l=60, r=20, t=60, b=60),
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
        legend=dict(orientation="h", yanchor="top", y=-0.2, x=0),  # below: the title may be long
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
        title="Training loss components", yaxis=dict(title="mean loss"), height=380,
        margin=dict(l=50, r=20, t=100, b=40), legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
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
        height=380, margin=dict(l=50, r=20, t=100, b=40), legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
    )
    _epoch_axis(fig, summaries)
    mark_recommended(fig, recommended)
    return fig


def class_counts_figure(counts: Mapping[str, int], compare: Mapping[str, int] | None = None,
                        names: tuple[str, str] = ("given labels", "true labels")) -> go.Figure:
    """Samples per class (one bar trace named names[0]); with `compare`, a second trace
    named names[1] side by side (e.g. noisy vs original labels)."""
    classes = list(counts)
    if compare:
        classes += [c for c in compare if c not in counts]
    shown = [plot(c) for c in classes]  # class names as text (Plotly reads <a>, <b>, ... in labels)
    fig = go.Figure(go.Bar(x=shown, y=[int(counts.get(c, 0)) for c in classes], name=names[0],
                           marker_color=ALL_COLOR, text=[int(counts.get(c, 0)) for c in classes]))
    if compare:
        fig.add_trace(go.Bar(x=shown, y=[int(compare.get(c, 0)) for c in classes], name=names[1],
                             marker_color=CLEAN_COLOR, text=[int(compare.get(c, 0)) for c in classes]))
    fig.update_layout(barmode="group", title="Samples per class", xaxis=dict(title="class", type="category"),
                      yaxis=dict(title="samples"), height=320, margin=dict(l=50, r=20, t=50, b=40),
                      showlegend=bool(compare))
    return fig
