"""Explore page (issue #13): the run's samples as pictures to select from. A 2-D map of
the sentence embeddings of one epoch (lasso / box / click), the given x predicted matrix
(click a cell), a class's loss histogram (select a range of bars): each selection opens
the Review page filtered to exactly those samples, where the bulk actions and undo are.
Near-duplicates with conflicting labels (groups side by side, one click gives them all
one label) and outliers (far from every class) are issues of their own.

Shown between Train and Review in the navigation (the file is 5_ so the other pages keep
their names). The work is in selfmix_core.explore, studio.explore and studio.charts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from selfmix_core import explore
from selfmix_core.review import describe_conflicts
from selfmix_core.store import StaleDecisionError
from studio import charts, state
from studio import explore as studio_explore
from studio.text import md

TABS = ("Map", "Given × predicted", "Loss by class", "Near-duplicates", "Outliers")
GROUPS_PER_PAGE = 10
DUP_SLIDER = (0.80, 1.00, 0.005)


def _review_button(run_id: str, samples, name: str, key: str) -> None:
    """"Review these N samples": the Review page filtered to exactly them."""
    n = len(samples)
    if n == 0:
        return
    c1, c2 = st.columns([3, 2], vertical_alignment="center")
    c1.markdown(f"**{n:,} sample{'s' if n != 1 else ''} {md(name)}.**")
    if c2.button(f"Review these {n:,} samples", key=key, type="primary", icon=state.PAGE_ICONS["review"],
                 help="Opens the Review page filtered to exactly these samples, with the bulk actions and undo."):
        studio_explore.send_to_review(run_id, samples, name)


def render_map(store, run_id: str, epoch: int, df: pd.DataFrame) -> None:
    kept = store.embedding_epochs(run_id)
    if epoch not in kept:
        if kept:
            st.info(f"The sentence embeddings are kept for epoch{'s' if len(kept) > 1 else ''} "
                    f"{', '.join(map(str, kept))} only (the recommended and the last): pick one of them above "
                    "to see the map.")
        else:
            st.info("This run has no sentence embeddings kept (it was trained before the map existed, or no epoch "
                    "has finished): the map needs a run trained with this version. The other tabs work.")
        return
    n = len(df)
    methods = explore.available_projections()
    if n > explore.TSNE_LIMIT:
        methods.pop("tsne", None)
    ss = st.session_state
    if ss.get("explore_method") not in methods:
        ss["explore_method"] = "pca"
    ss.setdefault("explore_color", charts.MAP_COLOR_BY[0])
    c1, c2 = st.columns([2, 3])
    method = c1.radio("Projection", list(methods), format_func=lambda m: methods[m], key="explore_method",
                      horizontal=True, help="PCA is instant; t-SNE separates classes better but takes a while "
                                            "(once: the map is cached).")
    color_by = c2.radio("Colour by", list(charts.MAP_COLOR_BY), key="explore_color", horizontal=True)
    with st.spinner(f"Projecting {n:,} embeddings with {methods[method]}…"):
        proj = studio_explore.projection(store, run_id, epoch, method)
    if proj is None:
        st.info("No embeddings for this epoch.")
        return
    xy, seconds, cached = proj
    if len(xy) != n:
        st.error("The kept embeddings do not match the dataset (different number of samples).")
        return
    rows = explore.map_sample(n, keep=np.flatnonzero(df["is_label_issue"].to_numpy(dtype=bool)))
    fig = charts.embedding_map(xy[rows], df.iloc[rows], color_by, hover=len(rows) <= 50_000)
    event = st.plotly_chart(fig, key=f"explore_map_{run_id}_{epoch}_{method}_{color_by}", on_select="rerun",
                            selection_mode=("lasso", "box", "points"), width="stretch")
    note = f"{methods[method]} of epoch {epoch}'s sentence embeddings" + (
        f" (made in {seconds:.1f} s, cached)" if not cached else " (cached)")
    if len(rows) < n:
        note += (f". {n:,} samples are more than the map draws: it shows {len(rows):,} of them "
                 "(every flagged one and a random share of the rest)")
    if len(rows) > 50_000:
        note += ". Above 50,000 points the hover shows the sample number only"
    st.caption(note + ".")
    _review_button(run_id, studio_explore.selected_samples(event), "selected on the map", "explore_map_review")


def render_matrix(run_id: str, report, names: list[str]) -> None:
    given = np.asarray(report.given_label, dtype=np.int64)
    pred = np.asarray(report.predicted_label, dtype=np.int64)
    mask = np.asarray(report.in_training, dtype=bool)
    k = len(names)
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (given[mask], pred[mask]), 1)
    event = st.plotly_chart(charts.selectable_matrix(counts, names), key=f"explore_matrix_{run_id}",
                            on_select="rerun", selection_mode=("points", "box"), width="stretch")
    cells = studio_explore.selected_cells(event)
    if not cells:
        st.caption("Click a cell (shift-click for more) to pick the samples given its row's label and predicted "
                   "its column's.")
        return
    hit = np.zeros(len(given), dtype=bool)
    for g, p in cells:
        hit |= (given == g) & (pred == p)
    hit &= mask
    if len(cells) == 1:
        g, p = cells[0]
        name = f"given {names[g]} and predicted {names[p]}"
    else:
        name = f"in {len(cells)} cells of the given × predicted matrix"
    _review_button(run_id, np.flatnonzero(hit), name, "explore_matrix_review")


def render_histogram(run_id: str, report, names: list[str]) -> None:
    ss = st.session_state
    key = "explore_hist_class"
    if not isinstance(ss.get(key), int) or not 0 <= ss[key] < len(names):
        ss[key] = 0
    c = st.selectbox("Class", list(range(len(names))), key=key, format_func=lambda i: names[i],
                     help="The losses of the samples given this label.")
    given = np.asarray(report.given_label, dtype=np.int64)
    mask = (given == c) & np.asarray(report.in_training, dtype=bool)
    loss = np.asarray(report.loss, dtype=np.float64)
    event = st.plotly_chart(charts.selectable_loss_histogram(loss[mask], title=f"Class {names[c]}"),
                            key=f"explore_hist_{run_id}_{c}", on_select="rerun", selection_mode=("box", "points"),
                            width="stretch")
    ranges = studio_explore.selected_ranges(event)
    if not ranges:
        st.caption("Drag a box over some bars (or click one) to pick the samples with those losses. High loss = the "
                   "model disagrees with the given label.")
        return
    picked = studio_explore.samples_in_ranges(loss, mask, ranges)
    lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    _review_button(run_id, picked, f"of class {names[c]} with a loss in {lo:.2f}–{hi:.2f}", "explore_hist_review")


@state.safe_callback
def _give_all(run_id: str, members: list[int], given: list[int], shown: list[int | None], pick_key: str,
              names: list[str], group: int) -> None:
    choice = st.session_state.get(pick_key)
    if choice not in names:
        st.session_state["explore_notes"] = ["Pick the label to give the group."]
        return
    label = names.index(choice)
    rows = [{"sample_index": m, "old_label": g, "new_label": None if g == label else label,
             "action": "keep" if g == label else "relabel"} for m, g in zip(members, given)]
    note = f"gave near-duplicate group {group} ({len(rows)} samples) the label {choice}"
    try:
        state.get_store().add_decisions(run_id, rows, session=state.session_token(),
                                        expected=dict(zip(members, shown)), note=note)
    except StaleDecisionError as exc:
        st.session_state["explore_notes"] = [describe_conflicts(exc.conflicts)]
        return
    st.session_state["explore_toast"] = f"Gave all {len(rows)} samples of group {group} the label {choice}."


def render_duplicates(store, run_id: str, epoch: int, ds, df: pd.DataFrame, names: list[str]) -> None:
    ss = st.session_state
    ss.setdefault(studio_explore.DUP_THRESHOLD_KEY, explore.DEFAULT_DUPLICATE_THRESHOLD)
    lo, hi, step = DUP_SLIDER
    st.slider("Cosine similarity at least", lo, hi, step=step, key=studio_explore.DUP_THRESHOLD_KEY,
              help="Two samples whose sentence embeddings are at least this similar are near-duplicates (so are "
                   "two identical texts, after case and spaces). Lower = more, looser groups.")
    with st.spinner("Searching for near-duplicates…"):
        dup, _ = studio_explore.issues(store, run_id, epoch, ds)
    emb_note = "" if store.load_embeddings(run_id, epoch) is not None else \
        " (identical texts only: this epoch has no embeddings kept)"
    st.caption(f"{dup.n_conflicting:,} groups with conflicting labels ({int(dup.is_near_duplicate.sum()):,} samples) "
               f"among {dup.n_groups:,} near-duplicate groups{emb_note}; {dup.n_exact_same_label:,} exact duplicates "
               f"with the same label (not issues). Searched in {dup.seconds:.1f} s.")
    if dup.largest_group > 50:
        st.warning(f"The largest group has {dup.largest_group:,} samples: at this threshold whole regions of the map "
                   "chain together. Raise the threshold.")
    groups = explore.duplicate_groups_frame(dup)
    if groups.empty:
        st.success("No near-duplicates with conflicting labels at this threshold.")
        return
    _review_button(run_id, groups["sample_index"].tolist(), "in near-duplicate groups with conflicting labels",
                   "explore_dup_review")
    ids = list(dict.fromkeys(groups["group"].tolist()))
    pages = max(1, -(-len(ids) // GROUPS_PER_PAGE))
    page = st.pagination(pages, key="explore_dup_page") if pages > 1 else 1
    page = page if isinstance(page, int) and 1 <= page <= pages else 1
    final = df["final_label"].astype(object).where(df["final_label"].notna(), None).to_numpy()
    for g in ids[(page - 1) * GROUPS_PER_PAGE: page * GROUPS_PER_PAGE]:
        members = groups.loc[groups["group"] == g, "sample_index"].tolist()
        with st.container(border=True):
            now = {str(final[m]) for m in members if final[m] is not None}
            status = "resolved: one label now" if len(now) == 1 and all(final[m] is not None for m in members) \
                else "conflicting labels"
            st.markdown(f"**Group {g}** · {len(members)} samples · {status}")
            cols = st.columns(min(len(members), 4))
            for j, m in enumerate(members):
                with cols[j % len(cols)]:
                    row = df.iloc[m]
                    st.caption(f"#{m} · given **{md(row['given_label'])}**"
                               + ("" if row["action"] == "none" else f" · now: *{md(row['decision'])}*"))
                    st.text(str(row["text"]))
            given_ids = [int(df["given_id"].iat[m]) for m in members]
            common = int(np.bincount(given_ids, minlength=len(names)).argmax())
            pick_key = f"explore_dup_label_{run_id}_{g}"
            c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
            c1.selectbox("Label for all", names, index=common, key=pick_key)
            shown = [None if int(df["decision_id"].iat[m]) < 0 else int(df["decision_id"].iat[m]) for m in members]
            c2.button("Give all this label", key=f"explore_dup_give_{run_id}_{g}", on_click=_give_all,
                      args=(run_id, members, given_ids, shown, pick_key, names, int(g)),
                      help="Relabels every sample of the group to the chosen label (keeps those that have it). "
                           "Undo on the Review page takes it back.")


def render_outliers(store, run_id: str, epoch: int, ds, df: pd.DataFrame) -> None:
    _, scores = studio_explore.issues(store, run_id, epoch, ds)
    if scores is None:
        st.info("Outliers need this epoch's sentence embeddings, which are kept for the recommended and the last "
                "epoch only.")
        return
    flags = explore.outlier_flags(scores)
    st.caption(f"{int(flags.sum()):,} samples flagged as outliers: far from every class (the cosine distance to the "
               "nearest class centre is above the median + 1.5 × the interquartile range). An outlier is not a "
               "label error: drop junk (boilerplate, another language), keep the rest.")
    order = np.argsort(-scores, kind="stable")[:200]
    table = pd.DataFrame({"sample": order, "outlier score": scores[order], "outlier": flags[order],
                          "given": df["given_label"].astype(str).to_numpy()[order],
                          "text": df["text"].astype(str).to_numpy()[order]})
    st.dataframe(table, hide_index=True, key="explore_outlier_table", height=420,
                 column_config={"outlier score": st.column_config.NumberColumn(format="%.3f")})
    _review_button(run_id, np.flatnonzero(flags).tolist(), "flagged as outliers", "explore_outlier_review")


def main() -> None:
    ss = st.session_state
    store = state.get_store()
    st.title("Explore")
    found = state.run_with_epochs(
        store, "No dataset yet: go to **Data** first, then train a run; its samples are mapped here.",
        "No run yet: go to **Train** and start one; the map appears after its first epoch.",
        "This run has no finished epoch yet: the map appears when epoch 1 ends.")
    if found is None:
        return
    run, summaries = found
    view = state.epoch_view(store, run, summaries, "explore_epoch", "This run's report does not match its dataset (different number of samples).")
    if view is None:
        return
    epoch, report, ds, names, df = view
    toast = ss.pop("explore_toast", None)
    if toast:
        st.success(toast)
    for note in ss.pop("explore_notes", []) or []:
        st.warning(note)
    # Lazy tabs: only the open one runs (a near-duplicate search at 100k takes a while).
    tabs = st.tabs(list(TABS), key="explore_tab", on_change="rerun")
    renders = (lambda: render_map(store, run["id"], epoch, df),
               lambda: render_matrix(run["id"], report, names),
               lambda: render_histogram(run["id"], report, names),
               lambda: render_duplicates(store, run["id"], epoch, ds, df, names),
               lambda: render_outliers(store, run["id"], epoch, ds, df))
    for tab, render in zip(tabs, renders):
        if tab.open is not False:
            with tab:
                render()


if __name__ == "__main__":
    state.run_page("Explore", main)
