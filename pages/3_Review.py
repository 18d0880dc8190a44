"""Review page: the samples flagged in one epoch of the selected run (the recommended
epoch unless the person picks another), most likely wrong first. Per row: accept the
suggestion, pick another label, keep or drop, in the table or one sample at a time
(full text and buttons); bulk accept for the whole filter; undo. Every decision goes
to the store at once.

Several tabs may review one run: each decision records this tab (state.session_token),
Undo takes back this tab's own last action, and a decision is written against the
decision the page showed for that sample (a sample another tab changed meanwhile is not
overwritten: the page says so and shows the current decision)."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd
import streamlit as st

from selfmix_core.review import (
    STATUS_MISLABELED,
    STATUS_UNCERTAIN,
    bulk_accept_rows,
    bulk_note,
    bulk_rows,
    choice_to_decision,
    decision_choices,
    describe_conflicts,
    describe_undo,
    filter_review,
    review_counts,
    top_suggestions,
    undo_last_action,
)
from selfmix_core.store import StaleDecisionError
from studio import explore as studio_explore
from studio import state
from studio.text import md

PAGE_SIZE = 25
BULK_CONFIRM_ABOVE = 20  # a bulk accept of more samples asks once before it is saved
FILTER_KEYS = ("review_given", "review_suggested", "review_score", "review_query", "review_flagged_only",
               "review_undecided", "review_status")
STATUS_ALL = "all flagged"
# Keyboard shortcuts of the one-at-a-time panel (Streamlit's st.button(shortcut=...)).
SHORTCUTS = {"accept": "A", "keep": "K", "drop": "D", "next": "N"}


def _first_page() -> None:
    """Back to the table's first page. The pager widget's key changes instead of its value
    being set: a widget set through Session State that also has a default makes Streamlit
    warn (st.pagination always has one). review_page is plain state: the page shown."""
    ss = st.session_state
    ss["review_page"] = 1
    ss["review_pager_v"] = ss.get("review_pager_v", 0) + 1


def _pager_key() -> str:
    return f"review_pager_{st.session_state.get('review_pager_v', 0)}"


@state.safe_callback
def _reset_page() -> None:
    _first_page()


def _editor_key(run_id: str, view: pd.DataFrame) -> str:
    """The data editor's key: new after every saved action, and for every different set of
    rows shown, so an edit is only ever read against the rows it was made on."""
    version = st.session_state.setdefault("review_version", 0)
    rows = zlib.crc32(view["sample_index"].to_numpy(dtype=np.int64).tobytes())
    key = f"review_editor_{run_id}_{version}_{rows:08x}"
    st.session_state["review_editor_key"] = key
    return key


def _shown_decision(decision_id) -> int | None:
    """A review_frame decision_id as the `expected` of a write (-1: no decision)."""
    return None if decision_id is None or int(decision_id) < 0 else int(decision_id)


def _write(run_id: str, rows, expected: dict, note: str | None = None) -> int | None:
    """Store one review action of this tab, made against the decisions it showed
    (`expected`); `note` names the samples in the decision log. Returns how many were
    written, or None when another tab changed one of those samples meanwhile (nothing is
    written; the page says which and redraws)."""
    try:
        return state.get_store().add_decisions(run_id, rows, session=state.session_token(), expected=expected,
                                               note=note)
    except StaleDecisionError as exc:
        st.session_state["review_notes"] = [describe_conflicts(exc.conflicts)]
        return None


def _bump_editor() -> None:
    st.session_state["review_version"] = st.session_state.get("review_version", 0) + 1


def render_filters(names: list[str]) -> dict:
    ss = st.session_state
    ss.setdefault("review_score", (0.0, 1.0))
    ss.setdefault("review_flagged_only", True)
    ss.setdefault("review_undecided", False)
    ss.setdefault("review_query", "")
    pair = ss.pop("review_pair", None)  # (given, predicted) sent from the Train page's confused pairs
    if isinstance(pair, (tuple, list)) and len(pair) == 2 and all(p in names for p in pair):
        ss["review_given"], ss["review_suggested"] = [pair[0]], [pair[1]]
        ss["review_flagged_only"] = False  # every sample of the pair, flagged or not
        _first_page()
    c1, c2, c3, c4 = st.columns([2, 2, 2, 3])
    given = c1.multiselect("Given label", names, key="review_given", on_change=_reset_page,
                           placeholder="all classes")
    suggested = c2.multiselect("Suggested label", names, key="review_suggested", on_change=_reset_page,
                               placeholder="all classes")
    score = c3.slider("Label score", 0.0, 1.0, step=0.01, key="review_score", on_change=_reset_page,
                      help="The model's probability of the given label: lower = more likely mislabeled.")
    query = c4.text_input("Search the text", key="review_query", on_change=_reset_page,
                          placeholder="a word or phrase (case-insensitive)")
    ss.setdefault("review_status", STATUS_ALL)
    t1, t2, t3 = st.columns([3, 2, 2])
    status = t1.radio("Show", [STATUS_ALL, STATUS_MISLABELED, STATUS_UNCERTAIN], key="review_status",
                      horizontal=True, on_change=_reset_page,
                      help="Likely mislabeled: flagged, and the model suggests another label. Uncertain: flagged, "
                           "but the model's suggestion is the given label (it is unsure of it).")
    flagged_only = t2.toggle("Only flagged (and already decided) samples", key="review_flagged_only",
                             on_change=_reset_page)
    undecided = t3.toggle("Only samples without a decision", key="review_undecided", on_change=_reset_page)
    ss.setdefault("review_near_duplicates", False)
    ss.setdefault("review_outliers", False)
    u1, u2, _ = st.columns([3, 2, 2])
    near = u1.toggle("Only near-duplicates with conflicting labels", key="review_near_duplicates",
                     on_change=_reset_page,
                     help="Samples whose text is identical, or whose sentence embedding is nearly identical (the "
                          "threshold is set on the Explore page), to a sample with another given label.")
    outliers = u2.toggle("Only outliers", key="review_outliers", on_change=_reset_page,
                         help="Samples far from every class in embedding space (junk, another language, ...): "
                              "not necessarily a label error.")
    return dict(given=given, suggested=suggested, score_range=tuple(score), query=query,
                flagged_only=flagged_only, undecided_only=undecided,
                status=None if status == STATUS_ALL else status, near_duplicates=near, outliers=outliers)


def issue_samples(store, run_id: str, epoch: int, dataset, near: bool, outliers: bool) -> list[int] | None:
    """The samples the near-duplicate / outlier filters keep (both on: in both), None = no
    such filter; notes on the page when the epoch lacks what they need."""
    if not near and not outliers:
        return None
    with st.spinner("Searching for near-duplicates and outliers…"):
        dup, scores = studio_explore.issues(store, run_id, epoch, dataset)
    keep = np.ones(len(dup.group), dtype=bool)
    if near:
        keep &= dup.is_near_duplicate
    if outliers:
        if scores is None:
            st.info("Outliers need this epoch's sentence embeddings, which are kept for the recommended and the "
                    "last epoch only: pick one of those.")
            keep &= False
        else:
            from selfmix_core.explore import outlier_flags

            keep &= outlier_flags(scores)
    return np.flatnonzero(keep).tolist()


@state.safe_callback
def _clear_selection() -> None:
    st.session_state.pop(studio_explore.REVIEW_SELECTION, None)
    _first_page()


@state.safe_callback
def _bulk_selection(run_id: str, filtered: pd.DataFrame, action: str, selection: str,
                    label_key: str | None = None, names: list | None = None) -> None:
    """One bulk action on every sample of the selection, named in the log by its note."""
    label = None
    if action == "relabel":
        choice = st.session_state.get(label_key)
        if not names or choice not in names:
            st.session_state["review_notes"] = ["Pick the label to relabel the selection to."]
            return
        label = names.index(choice)
    rows = bulk_rows(filtered, action, label)
    if rows.empty:
        st.session_state["review_toast"] = "Nothing to change: every selected sample already has that decision."
        return
    note = bulk_note(action, len(rows), selection)
    expected = {int(i): _shown_decision(d) for i, d in zip(filtered["sample_index"], filtered["decision_id"])}
    expected = {i: expected[i] for i in rows["sample_index"].tolist()}
    if _write(run_id, rows, expected, note=note) is not None:
        st.session_state["review_toast"] = note[0].upper() + note[1:] + ". Undo takes them all back at once."
    _bump_editor()


def render_selection(run_id: str, selection: dict, filtered: pd.DataFrame, names: list[str]) -> None:
    """The banner of a selection sent from the Explore page, and its bulk actions."""
    name = str(selection.get("name") or "selected")
    n = len(filtered)
    with st.container(border=True):
        c1, c2 = st.columns([4, 1], vertical_alignment="center")
        c1.markdown(f"Showing the **{n:,} samples {md(name)}** (the other filters are off while a selection is "
                    "shown).")
        c2.button("Show all samples", key="review_selection_clear", on_click=_clear_selection,
                  help="Back to the flagged samples and the filters.")
        b1, b2, b3, b4, b5 = st.columns([2, 2, 1, 1, 1], vertical_alignment="bottom")
        b1.button(f"Accept the suggestion for all {n:,}", key="review_sel_accept", on_click=_bulk_selection,
                  args=(run_id, filtered, "accept", name),
                  help="Every selected sample whose suggestion differs from its given label.")
        label_key = "review_sel_label"
        b2.selectbox("Relabel all to", names, key=label_key)
        b3.button("Relabel all", key="review_sel_relabel", on_click=_bulk_selection,
                  args=(run_id, filtered, "relabel", name), kwargs={"label_key": label_key, "names": names})
        b4.button("Keep all", key="review_sel_keep", on_click=_bulk_selection, args=(run_id, filtered, "keep", name))
        b5.button("Drop all", key="review_sel_drop", on_click=_bulk_selection, args=(run_id, filtered, "drop", name))


def _save_edits(run_id: str, view: pd.DataFrame, names: list[str], edits: dict, shown: dict) -> None:
    """Turn data-editor edits of the page `view` into stored decisions (one batch), made
    against `shown` ({sample: decision id the editor showed})."""
    rows, notes = [], []
    for pos, change in edits.items():
        if "decision" not in change:
            continue
        pos = int(pos)
        if not 0 <= pos < len(view):
            continue
        row = view.iloc[pos]
        choice = change["decision"]
        if choice is None or choice == "":
            if row["action"] != "none":
                notes.append("A decision cannot be blanked out: use **Undo**, or pick another decision.")
            continue
        try:
            action, new = choice_to_decision(choice, int(row["given_id"]), int(row["suggested_id"]), names)
        except ValueError as exc:
            notes.append(md(exc))
            continue
        final = int(row["given_id"]) if action == "keep" else new
        if action == row["action"] and (action == "drop" or final == int(row["final_id"])):
            continue  # nothing changes
        rows.append({"sample_index": int(row["sample_index"]), "old_label": int(row["given_id"]),
                     "new_label": new, "action": action})
    if rows:
        expected = {r["sample_index"]: shown.get(r["sample_index"]) for r in rows}
        if _write(run_id, rows, expected) is not None:
            st.session_state["review_toast"] = f"Saved {len(rows)} decision{'s' if len(rows) > 1 else ''}."
    if notes:
        st.session_state["review_notes"] = notes + (st.session_state.get("review_notes") or [])
    _bump_editor()
    st.rerun()


@state.safe_callback
def _ask_bulk(token: int) -> None:
    st.session_state["review_bulk_ask"] = token


@state.safe_callback
def _cancel_bulk() -> None:
    st.session_state.pop("review_bulk_ask", None)


@state.safe_callback
def _bulk_accept(run_id: str, rows: pd.DataFrame) -> None:
    st.session_state.pop("review_bulk_ask", None)
    n = _write(run_id, rows, {int(i): None for i in rows["sample_index"]})  # shown undecided
    if n is not None:
        st.session_state["review_toast"] = f"Accepted {n:,} suggestions. Undo takes them all back at once."
    _bump_editor()


@state.safe_callback
def _decide_one(run_id: str, sample: int, given_id: int, action: str, new_label: int | None = None,
                label_key: str | None = None, shown: int | None = None) -> None:
    """One decision from the one-at-a-time panel, made against the decision it showed
    (`shown`: its id, None = undecided). With label_key, the new label is the class name
    chosen in that selectbox (relabel, or keep when it is the given label)."""
    if label_key is not None:
        names = st.session_state.get("review_label_names") or []
        choice = st.session_state.get(label_key)
        if choice not in names:
            st.session_state["review_notes"] = ["Pick the label to relabel this sample to."]
            return
        new_label = names.index(choice)
        action = "keep" if new_label == given_id else "relabel"
    if action in ("keep", "drop"):
        new_label = None
    rows = [{"sample_index": int(sample), "old_label": int(given_id), "new_label": new_label, "action": action}]
    if _write(run_id, rows, {int(sample): shown}) is not None:
        st.session_state["review_toast"] = "Saved 1 decision."
        _bump_editor()  # (refused: the panel stays on the sample, now showing its current decision)


@state.safe_callback
def _undo(run_id: str, pick_key: str | None = None) -> None:
    """Undo this tab's last action; with pick_key, the action whose decision id is chosen
    in that selectbox (any tab's)."""
    if pick_key is None:
        undone = undo_last_action(state.get_store(), run_id, session=state.session_token())
    else:
        pick = st.session_state.get(pick_key)
        if not isinstance(pick, int):
            st.session_state["review_notes"] = ["Pick the decision to undo."]
            return
        undone = state.get_store().undo_action(run_id, session=state.session_token(), decision_id=pick)
    st.session_state["review_toast"] = describe_undo(undone)
    _bump_editor()


def _action_text(action: dict, me: str) -> str:
    """An undoable action in the "Undo another decision" list (the text never changes)."""
    what = (f"sample #{action['sample_index']}" if action["n"] == 1
            else f"{action['n']:,} samples from #{action['sample_index']}")
    who = "this tab" if action["session"] == me else "another tab" if action["session"] else "no tab recorded"
    note = f" ({action['note']})" if action.get("note") else ""
    return f"{action['action']} {what}{note} · {action['time'][11:19]} UTC · {who}"


def render_undo(store, run_id: str) -> None:
    """Undo this tab's last action; or pick any recent one (after a reload, this tab has
    made none; or to take back another tab's decision on purpose)."""
    me = state.session_token()
    mine = store.live_actions(run_id, session=me, limit=1)
    st.button("Undo my last decision", key="review_undo", on_click=_undo, args=(run_id,), disabled=not mine,
              help="Takes back the last decision made in this tab (a bulk accept as a whole)."
              if mine else "This tab has made no decision to undo; pick one under 'Undo another…'.")
    recent = store.live_actions(run_id, limit=15)
    if recent:
        with st.popover("Undo another…"):
            texts = state.picker_labels(recent, lambda a: _action_text(a, me))
            st.selectbox("Decision to undo", [a["id"] for a in recent], key="review_undo_pick",
                         format_func=lambda i: texts.get(i, str(i)),
                         help="The newest decisions not undone yet, newest first (a bulk accept is one).")
            st.button("Undo it", key="review_undo_other", on_click=_undo, args=(run_id,),
                      kwargs={"pick_key": "review_undo_pick"})


def render_bulk(run_id: str, bulk: pd.DataFrame) -> None:
    """Bulk accept of the filter's undecided samples; above BULK_CONFIRM_ABOVE samples it
    asks once (for exactly these samples) before saving."""
    n = len(bulk)
    label = f"Accept the suggestion for all {n:,} undecided samples in this filter"
    why = "Every matching sample (not only this page) whose suggested label differs from its given label."
    if n <= BULK_CONFIRM_ABOVE:
        st.button(label, key="review_bulk", on_click=_bulk_accept, args=(run_id, bulk), disabled=n == 0, help=why)
        return
    token = zlib.crc32(bulk["sample_index"].to_numpy(dtype=np.int64).tobytes())
    st.button(label, key="review_bulk", on_click=_ask_bulk, args=(token,), help=why)
    if st.session_state.get("review_bulk_ask") == token:
        with st.container(border=True):
            st.warning(f"Relabel {n:,} samples to the model's suggestion at once? "
                       "**Undo my last decision** takes them all back.")
            c1, c2 = st.columns(2)
            c1.button(f"Yes, accept all {n:,}", key="review_bulk_yes", type="primary", on_click=_bulk_accept,
                      args=(run_id, bulk))
            c2.button("Cancel", key="review_bulk_no", on_click=_cancel_bulk)


def render_table(store, run_id: str, filtered: pd.DataFrame, names: list[str], report=None) -> None:
    ss = st.session_state
    n = len(filtered)
    num_pages = max(1, math.ceil(n / PAGE_SIZE))
    page = ss.get(_pager_key(), ss.get("review_page", 1))  # the pager's choice, else the page last shown
    if not isinstance(page, int) or not 1 <= page <= num_pages:
        _first_page()
        page = 1
    ss["review_page"] = page
    start = (page - 1) * PAGE_SIZE
    view = filtered.iloc[start:start + PAGE_SIZE]
    if n == 0:
        st.info("No sample matches these filters.")
        return
    st.caption(f"{n:,} matching samples, most likely wrong first · rows {start + 1:,}–{start + len(view):,}")
    table = pd.DataFrame({
        "sample": view["sample_index"].to_numpy(),
        "text": view["text"].astype(str).to_numpy(),
        "given": view["given_label"].astype(str).to_numpy(),
        "suggested": view["suggested_label"].astype(str).to_numpy(),
        "confidence": view["confidence"].to_numpy() * 100.0,
        "label score": view["label_score"].to_numpy(),
        "clean prob": view["clean_prob"].to_numpy(),
        "status": view["status"].astype(str).to_numpy(),
        "decision": view["decision"].to_numpy(dtype=object),
    })
    key = _editor_key(run_id, view)
    # The decisions this editor showed, kept until its next edit comes back: an edit is
    # written against them, so a sample another tab decided meanwhile is not overwritten.
    shown_before = (ss.get("_review_shown") or {}).get(key)
    ss["_review_shown"] = {key: {int(i): _shown_decision(d) for i, d in zip(view["sample_index"], view["decision_id"])}}
    st.data_editor(
        table,
        key=key,
        hide_index=True,
        height=35 * (len(table) + 1) + 3,  # the whole page of rows, no inner scrolling
        placeholder="choose…",
        disabled=["sample", "text", "given", "suggested", "confidence", "label score", "clean prob", "status"],
        column_config={
            "sample": st.column_config.NumberColumn("#", help="Row number in the dataset (0-based).", width=60),
            "text": st.column_config.TextColumn("Text", width=320),
            # wide enough for long intent names (Banking77's direct_debit_payment_not_recognised)
            "given": st.column_config.TextColumn("Given label", width=260),
            "suggested": st.column_config.TextColumn("Suggested", width=260, help="The model's prediction."),
            "confidence": st.column_config.ProgressColumn("Confidence", min_value=0.0, max_value=100.0, format="%.0f%%", width=100,
                                                          help="The model's probability for its suggestion."),
            "label score": st.column_config.NumberColumn(
                "Label score", format="%.3f", width=90,
                help="The model's probability of the given label. Lower = more likely mislabeled; the table "
                     "is sorted by it."),
            "clean prob": st.column_config.NumberColumn("Clean prob.", format="%.3f", width=80,
                                                        help="The GMM's probability that the sample is clean "
                                                             "(flagged below τ). Lower = more likely mislabeled."),
            "status": st.column_config.TextColumn(
                "Status", width=120,
                help="likely mislabeled: the model suggests another label; uncertain: it suggests the given "
                     "label but is unsure of it."),
            "decision": st.column_config.SelectboxColumn(
                "Your decision", options=decision_choices(names), width=160, required=False,
                help="accept the suggestion, keep the given label, drop the sample, or pick a label. Saved at once."),
        },
    )
    edits = (ss.get(key) or {}).get("edited_rows") or {}
    if edits:
        _save_edits(run_id, view, names, edits, shown_before or ss["_review_shown"][key])
    if num_pages > 1:
        st.pagination(num_pages, default=page, key=_pager_key())
    render_focus(run_id, view, names, report)
    with st.expander("Read the texts on this page in full"):
        for _, row in view.iterrows():
            st.markdown(f"**#{row['sample_index']}** · given *{md(row['given_label'])}* · "
                        f"suggested *{md(row['suggested_label'])}*")
            st.text(row["text"])


@state.safe_callback
def _next_sample(focus_key: str, pos: int, n: int) -> None:
    st.session_state[focus_key] = (int(pos) + 1) % max(1, int(n))


def render_focus(run_id: str, view: pd.DataFrame, names: list[str], report=None) -> None:
    """One sample of this page at a time: its full text, the model's top labels and one
    button per decision (full label names; keyboard shortcuts A/K/D/N). It starts on the
    page's first undecided sample and moves on after each decision."""
    ss = st.session_state
    ss["review_label_names"] = names
    st.subheader("One at a time")
    undecided = np.flatnonzero(view["action"].to_numpy() == "none")
    version = ss.get("review_version", 0)
    rows = zlib.crc32(view["sample_index"].to_numpy(dtype=np.int64).tobytes())
    suffix = f"{run_id}_{version}_{rows:08x}"
    first = int(undecided[0]) if len(undecided) else 0
    focus_key = f"review_focus_{suffix}"
    # The option texts must not change between a render and the browser's reply (it sends
    # the text back): no decision in them, another tab may make one meanwhile.
    pos = st.selectbox(
        "Sample", range(len(view)), key=focus_key, **({} if focus_key in ss else {"index": first}),
        format_func=lambda i: (f"#{view['sample_index'].iloc[i]} · {view['given_label'].iloc[i]} → "
                               f"{view['suggested_label'].iloc[i]} · label score {view['label_score'].iloc[i]:.3f}"),
        help="The samples of this table page, in the same order. After each decision the next undecided one opens.",
    )
    if not isinstance(pos, int) or not 0 <= pos < len(view):  # a text from an older render of these rows
        pos = first
    row = view.iloc[pos]
    sample, given_id, suggested_id = int(row["sample_index"]), int(row["given_id"]), int(row["suggested_id"])
    given, suggested = str(row["given_label"]), str(row["suggested_label"])
    shown = {"shown": _shown_decision(row["decision_id"])}  # what this panel shows: the decision it replaces
    top = (top_suggestions(report, sample, names) if report is not None
           else [(suggested, float(row["confidence"]))])
    with st.container(border=True):
        st.markdown(f"**#{sample}** · given **{md(given)}** · suggested **{md(suggested)}** "
                    f"({row['confidence']:.0%}) · label score {row['label_score']:.3f} · "
                    f"clean prob. {row['clean_prob']:.3f}"
                    + ("" if row["action"] == "none" else f" · your decision: *{md(row['decision'])}*"))
        st.caption("The model's top labels: " + " · ".join(f"**{md(n)}** {p:.0%}" for n, p in top))
        if row["status"] == STATUS_UNCERTAIN:
            st.info("Uncertain: the model's suggestion is the given label, but it is unsure of it. "
                    "Keep it, or relabel it to another of its top labels.")
        st.text(row["text"])
        b1, b2 = st.columns(2)
        b1.button(f"Accept: {md(suggested)}", key=f"review_one_accept_{suffix}", on_click=_decide_one,
                  args=(run_id, sample, given_id, "accept", suggested_id), kwargs=shown, width="stretch", wrap=True,
                  disabled=suggested_id == given_id, shortcut=SHORTCUTS["accept"],
                  help=f"Relabel the sample to the model's suggestion, {md(suggested)} (key A).")
        b2.button(f"Keep: {md(given)}", key=f"review_one_keep_{suffix}", on_click=_decide_one,
                  args=(run_id, sample, given_id, "keep"), kwargs=shown, width="stretch", wrap=True,
                  shortcut=SHORTCUTS["keep"], help=f"The given label, {md(given)}, is right (key K).")
        b3, b4, b5, b6 = st.columns([2, 4, 2, 2], vertical_alignment="bottom")
        b3.button("Drop", key=f"review_one_drop_{suffix}", on_click=_decide_one,
                  args=(run_id, sample, given_id, "drop"), kwargs=shown, shortcut=SHORTCUTS["drop"],
                  help="Leave the sample out of training and the export's labels (key D).")
        others = [n for n in names if n != given]
        # default: the model's most likely label other than the given one (uncertain: its second choice)
        pick = next((n for n, _ in top if n in others), suggested)
        default = others.index(pick) if pick in others else 0
        label_key = f"review_one_label_{suffix}_{sample}"
        b4.selectbox("Relabel to", others, index=default, key=label_key)
        b5.button("Relabel", key=f"review_one_relabel_{suffix}", on_click=_decide_one,
                  args=(run_id, sample, given_id, "relabel"), kwargs={"label_key": label_key, **shown},
                  help="Relabel the sample to the class chosen beside.")
        b6.button("Next", key=f"review_one_next_{suffix}", on_click=_next_sample, args=(focus_key, pos, len(view)),
                  shortcut=SHORTCUTS["next"], help="The next sample of this page, no decision (key N).")
        st.caption("Keys: **A** accept · **K** keep · **D** drop · **N** next.")


def main() -> None:
    ss = st.session_state
    store = state.get_store()
    st.title("Review")
    found = state.run_with_epochs(
        store, "No dataset yet: go to **Data** first, then train a run; its flagged samples are reviewed here.",
        "No run yet: go to **Train** and start one; flagged samples appear here after its first epoch.",
        "This run has no finished epoch yet: the flagged samples appear when epoch 1 ends. "
        "Follow it on the Train page.")
    if found is None:
        return
    run, summaries = found
    view = state.epoch_view(store, run, summaries, "review_epoch", "This run's report does not match its dataset (different number of samples); it cannot be reviewed.")
    if view is None:
        return
    epoch, report, ds, names, df = view

    status = run["status"]
    where = f"epoch {epoch} of run **{md(run.get('name') or run['id'][:6])}** ({status})"
    if status == "running":
        st.info(f"Showing {where}. Training is still running: your decisions are fed into it from the next epoch. "
                "Pause it on the Train page to review in peace.")
    elif status == "paused":
        st.info(f"Showing {where}. The run is paused: your decisions are used when you resume it on the Train page.")
    else:
        st.caption(f"Showing {where}. τ = {report.tau:g}: samples with a clean probability below it are flagged.")

    toast = ss.pop("review_toast", None)
    if toast:
        st.toast(toast)
        st.success(toast)
    for note in ss.pop("review_notes", []) or []:
        st.warning(note)

    counts = review_counts(df)
    c1, c2 = st.columns([3, 2], vertical_alignment="center")
    frac = counts["reviewed"] / counts["flagged"] if counts["flagged"] else 1.0
    c1.progress(frac, text=f"Reviewed {counts['reviewed']:,} / {counts['flagged']:,} flagged samples "
                           f"({counts['decisions']:,} decision{'' if counts['decisions'] == 1 else 's'} in all)")
    c1.caption(f"Flagged: {counts['mislabeled']:,} likely mislabeled (the model suggests another label) · "
               f"{counts['uncertain']:,} uncertain (it suggests the given label, unsure of it).")
    with c2:
        render_undo(store, run["id"])
    if counts["flagged"] == 0:
        st.success("Nothing is flagged in this epoch. Turn off 'Only flagged' to browse every sample.")

    if ss.get("review_pair") is not None:  # a confused pair sent from the Train page replaces a selection
        ss.pop(studio_explore.REVIEW_SELECTION, None)
    selection = studio_explore.active_selection(run["id"])
    if selection is not None:
        filtered = filter_review(df, flagged_only=False, samples=selection["samples"])
        render_selection(run["id"], selection, filtered, names)
    else:
        filters = render_filters(names)
        near, outliers = filters.pop("near_duplicates"), filters.pop("outliers")
        filters["samples"] = issue_samples(store, run["id"], epoch, ds, near, outliers)
        filtered = filter_review(df, **filters)
        render_bulk(run["id"], bulk_accept_rows(filtered))
    render_table(store, run["id"], filtered, names, report)


if __name__ == "__main__":
    state.run_page("Review", main)
