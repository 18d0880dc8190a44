"""Issue #13's measurements: the Explore page's map and its near-duplicate / outlier
detectors. Writes the section `explore` of docs/BENCHMARKS.md (every number in it comes
from this run) and the raw results to --out (JSON).

    python bench/bench_explore.py [--sizes 10000,100000] [--out runs/bench-explore.json] [--no-doc]

1. Map: PCA projection time, the figure build (studio.charts.embedding_map) and its JSON
   serialisation (what Streamlit sends to the browser) for a first draw, and again for a
   redraw after a selection, at each size, on synthetic 384-wide float16 embeddings.
   The browser's own WebGL draw is not in these numbers.
2. Near-duplicate search (selfmix_core.explore.near_duplicates) at each size, same data.
3. Class separation of the 2-D map on TREC (bundled MiniLM embeddings, not fine-tuned):
   kNN accuracy of PCA and scikit-learn t-SNE, and their time.
4. TREC's training set: its groups of identical normalised texts, and how many of them
   the embedding search alone finds.
5. Injected data: 2,000 AG News training texts + 200 copies of 200 of them with another
   label + 200 IMDB reviews with random AG labels; the share each detector finds.

3-5 use the sentence embeddings of the bundled MiniLM-L6 (mean pooling, max length 64)
without fine-tuning: a training run per dataset did not fit this machine's time.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from selfmix_core import explore  # noqa: E402

DATA = Path("/work/shared/data")
SEED = 0


def synthetic(n: int, rng: np.random.Generator, k: int = 4, dim: int = 384) -> tuple[np.ndarray, np.ndarray]:
    """k Gaussian clusters in `dim` dimensions (float16) and their labels, 1% of the rows
    near-copies of another row."""
    centres = rng.normal(size=(k, dim)).astype(np.float32)
    y = rng.integers(0, k, n)
    emb = centres[y] + rng.normal(scale=1.5, size=(n, dim)).astype(np.float32)
    dup = rng.choice(n, size=n // 100, replace=False)
    emb[dup] = emb[rng.choice(n, size=len(dup))] + rng.normal(scale=0.01, size=(len(dup), dim)).astype(np.float32)
    return emb.astype(np.float16), y


def fake_frame(n: int, y: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    names = np.array(["World", "Sports", "Business", "Sci/Tech"], dtype=object)
    clean = rng.random(n)
    return pd.DataFrame({
        "sample_index": np.arange(n), "text": [f"synthetic text number {i} " * 3 for i in range(n)],
        "given_label": names[y % 4], "suggested_label": names[(y + (clean < 0.1)) % 4], "action": "none",
        "clean_prob": clean, "is_label_issue": clean < 0.1,
    })


def time_map(n: int, rng: np.random.Generator) -> dict:
    from studio.charts import embedding_map

    emb, y = synthetic(n, rng)
    frame = fake_frame(n, y, rng)
    t0 = time.perf_counter()
    xy = explore.project(emb, "pca", seed=SEED)
    t1 = time.perf_counter()
    fig = embedding_map(xy, frame, "clean probability")
    payload = fig.to_json()
    t2 = time.perf_counter()
    selected = rng.choice(n, size=max(1, n // 50), replace=False)
    t3 = time.perf_counter()
    fig2 = embedding_map(xy, frame, "clean probability", selected=selected)
    payload2 = fig2.to_json()
    t4 = time.perf_counter()
    t5 = time.perf_counter()
    dup = explore.near_duplicates(emb, frame["text"].tolist(), y, threshold=explore.DEFAULT_DUPLICATE_THRESHOLD)
    t6 = time.perf_counter()
    scores = explore.outlier_scores(emb, y)
    t7 = time.perf_counter()
    del scores
    return {"n": n, "pca_s": t1 - t0, "figure_s": t2 - t1, "first_draw_s": t2 - t0, "payload_mb": len(payload) / 1e6,
            "redraw_s": t4 - t3, "redraw_payload_mb": len(payload2) / 1e6, "selected": int(len(selected)),
            "near_duplicate_s": t6 - t5, "near_duplicate_groups": dup.n_groups, "outlier_centroid_s": t7 - t6}


def encode(texts: list[str], max_length: int = 64, batch: int = 128) -> np.ndarray:
    """(N, 384) float16 mean-pooled MiniLM-L6 embeddings (the bundled encoder, not fine-tuned)."""
    import torch

    from selfmix_core.model import load_encoder, load_tokenizer

    tok, enc = load_tokenizer(None), load_encoder(None).eval()
    out = np.zeros((len(texts), enc.config.hidden_size), dtype=np.float16)
    order = np.argsort([len(t) for t in texts], kind="stable")
    with torch.inference_mode():
        for s in range(0, len(texts), batch):
            b = order[s:s + batch]
            e = tok([texts[i] for i in b], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            h = enc(**e).last_hidden_state
            m = e["attention_mask"].unsqueeze(-1).float()
            out[b] = ((h * m).sum(1) / m.sum(1)).numpy()
    return out


PARTS = ("map", "trec", "agnews_map", "injected")


def trec(cache: Path) -> dict:
    df = pd.read_csv(DATA / "trec" / "train.csv")
    texts, y = df["text"].astype(str).tolist(), df["label"].to_numpy()
    emb = _cached(cache / "trec_train_minilm.npy", lambda: encode(texts))
    first = explore.exact_text_groups(texts)
    repeats = first != np.arange(len(texts))
    group_ids = np.unique(first[repeats])  # one group per text that occurs more than once
    conflicting = [g for g in group_ids if len(set(y[first == g])) > 1]
    out = {"n": len(texts), "exact_groups": int(len(group_ids)), "exact_groups_conflicting": len(conflicting),
           "exact_duplicate_rows": int(repeats.sum())}
    for thr in (0.99, 0.97, 0.95):
        dup = explore.near_duplicates(emb, texts, y, thr)
        emb_only = explore.near_duplicates(emb, [str(i) for i in range(len(texts))], y, thr,
                                           min_word_overlap=0)  # texts all different: the embeddings alone
        found = sum(1 for g in group_ids if len(set(emb_only.group[first == g])) == 1 and emb_only.group[g] >= 0)
        out[f"thr_{thr}"] = {"embedding_only_found": int(found), "groups": dup.n_groups,
                             "conflicting_groups": dup.n_conflicting, "largest_group": dup.largest_group,
                             "flagged_samples": int(dup.is_near_duplicate.sum()), "seconds": dup.seconds}
    out["exact_same_label_count"] = explore.near_duplicates(None, texts, y, use_embeddings=False).n_exact_same_label
    # class separation of the 2-D map
    out.update({k: v for k, v in map_separation(texts, y, emb).items() if k != "n"})
    return out


def map_separation(texts: list[str], y: np.ndarray, emb: np.ndarray) -> dict:
    """10-NN accuracy of the PCA and t-SNE maps (and of the full embeddings), with times."""
    out = {"n": len(texts)}
    for method in ("pca", "tsne"):
        t0 = time.perf_counter()
        xy = explore.project(emb, method, seed=SEED)
        out[f"map_{method}_s"] = time.perf_counter() - t0
        out[f"map_{method}_knn_acc"] = explore.knn_accuracy(xy, y, k=10)
    out["full_dim_knn_acc"] = explore.knn_accuracy(explore._unit_rows(emb.astype(np.float32)), y, k=10)
    return out


def agnews_map(cache: Path) -> dict:
    """The map's class separation on AG News' 5,000-text training file (bundled MiniLM)."""
    df = pd.read_csv(DATA / "agnews" / "train_partial_5k.csv")
    texts, y = df["text"].astype(str).tolist(), df["label"].to_numpy()
    return map_separation(texts, y, _cached(cache / "agnews5k_train_minilm.npy", lambda: encode(texts)))


def injected(cache: Path) -> dict:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(SEED)
    ag = pd.read_csv(DATA / "agnews" / "train_partial_5k.csv")
    imdb = pd.read_csv(DATA / "imdb" / "test.csv")
    base = ag.sample(2000, random_state=SEED).reset_index(drop=True)
    copies = base.sample(200, random_state=SEED + 1).copy()
    copies["label"] = (copies["label"] + rng.integers(1, 4, len(copies))) % 4  # another AG label
    other = imdb.sample(200, random_state=SEED + 2).copy()
    other["label"] = rng.integers(0, 4, len(other))
    df = pd.concat([base, copies, other], ignore_index=True)
    texts, y = df["text"].astype(str).tolist(), df["label"].to_numpy()
    emb = _cached(cache / "agnews_injected_minilm.npy", lambda: encode(texts))
    n_base = len(base)
    is_copy = np.zeros(len(df), bool)
    is_copy[n_base:n_base + 200] = True
    is_other = np.zeros(len(df), bool)
    is_other[n_base + 200:] = True
    copied_from = copies.index.to_numpy()  # rows of base that were copied
    out = {"n": len(df)}
    dup = explore.near_duplicates(emb, texts, y, explore.DEFAULT_DUPLICATE_THRESHOLD)
    text_only = explore.near_duplicates(None, texts, y, use_embeddings=False)
    emb_only = explore.near_duplicates(emb, [str(i) for i in range(len(texts))], y, explore.DEFAULT_DUPLICATE_THRESHOLD,
                                       min_word_overlap=0)
    for name, d in (("near_duplicates", dup), ("text_only", text_only), ("embedding_only", emb_only)):
        out[name] = {"copies_found": float(d.is_near_duplicate[is_copy].mean()),
                     "originals_found": float(d.is_near_duplicate[copied_from].mean()),
                     "others_flagged": int(d.is_near_duplicate[~is_copy].sum() - d.is_near_duplicate[copied_from].sum()),
                     "seconds": d.seconds}
    truth = is_other.astype(int)
    for method in ("centroid", "knn"):
        t0 = time.perf_counter()
        s = explore.outlier_scores(emb, y, method=method)
        secs = time.perf_counter() - t0
        f = explore.outlier_flags(s)
        out[f"outlier_{method}"] = {"auroc": float(roc_auc_score(truth, s)), "found": float(f[is_other].mean()),
                                    "false_flags": int(f[~is_other].sum()), "seconds": secs}
    return out


def fine_tuned(run_dir: Path) -> dict:
    """The same measures on a CLI run's own (fine-tuned) embeddings: run_dir/samples.csv
    (texts, given labels) and run_dir/reports/epoch-NNN.emb.npy (the kept epochs)."""
    df = pd.read_csv(run_dir / "samples.csv", keep_default_na=False)
    texts = df["text"].astype(str).tolist()
    names = sorted(set(df["given_label"].astype(str)))
    y = np.array([names.index(v) for v in df["given_label"].astype(str)])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    first = explore.exact_text_groups(texts)
    groups = np.unique(first[first != np.arange(len(texts))])
    out = {"run_dir": str(run_dir), "n": len(texts), "exact_groups": int(len(groups)),
           "recommended_epoch": metrics.get("recommended_epoch"), "epochs": {}}
    for path in sorted((run_dir / "reports").glob("epoch-*.emb.npy")):
        emb = np.load(path)
        e = {}
        for method in ("pca", "tsne"):
            t0 = time.perf_counter()
            xy = explore.project(emb, method, seed=SEED)
            e[f"map_{method}_s"] = time.perf_counter() - t0
            e[f"map_{method}_knn_acc"] = explore.knn_accuracy(xy, y, k=10)
        for thr in (0.99, 0.97, 0.95):
            d = explore.near_duplicates(emb, [str(i) for i in range(len(texts))], y, thr, min_word_overlap=0)
            e[f"thr_{thr}"] = {"embedding_only_found": int(sum(1 for g in groups if d.group[g] >= 0
                                                              and len(set(d.group[first == g])) == 1)),
                               "groups": d.n_groups, "conflicting_groups": d.n_conflicting,
                               "largest_group": d.largest_group}
            # the detector as the page and samples.csv run it: the real texts, pairs sharing words
            w = explore.near_duplicates(emb, texts, y, thr)
            e[f"thr_{thr}_words"] = {"groups": w.n_groups, "conflicting_groups": w.n_conflicting,
                                     "largest_group": w.largest_group,
                                     "exact_found": int(sum(1 for g in groups if w.group[g] >= 0
                                                            and len(set(w.group[first == g])) == 1))}
        out["epochs"][int(path.name[6:9])] = e
    return out


def _cached(path: Path, make) -> np.ndarray:
    if path.is_file():
        return np.load(path)
    arr = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, arr)
    return arr


def render(res: dict) -> str:
    t, inj = res["trec"], res["injected"]
    rows = "\n".join(
        f"| {m['n']:,} | {m['pca_s']:.2f} | {m['figure_s']:.2f} | {m['first_draw_s']:.2f} | {m['payload_mb']:.1f} | "
        f"{m['redraw_s']:.2f} | {m['near_duplicate_s']:.1f} | {m['outlier_centroid_s']:.2f} |"
        for m in res["map"])
    thr_rows = "\n".join(
        f"| {thr} | {t[f'thr_{thr}']['embedding_only_found']} of {t['exact_groups']} | {t[f'thr_{thr}']['groups']} | "
        f"{t[f'thr_{thr}']['conflicting_groups']} | {t[f'thr_{thr}']['largest_group']} | "
        f"{t[f'thr_{thr}']['seconds']:.2f} |" for thr in (0.99, 0.97, 0.95))
    d = inj["near_duplicates"]
    best = max(("centroid", "knn"), key=lambda m: inj[f"outlier_{m}"]["auroc"])
    pca_better = t["map_pca_knn_acc"] >= t["map_tsne_knn_acc"]
    return "\n\n".join([
        "## Explore page (issue #13): the map, near-duplicates and outliers",
        (f"The parts {', '.join(res['earlier']['parts'])} were made by `{res['earlier']['command'].strip()}` at "
         f"revision {res['earlier']['revision']}; the others by " if "earlier" in res else "Made by ") +
        f"`{res['command'].strip()}` at revision {res['revision']} on {res['machine']}, shared with other jobs "
        f"(1-minute load average {res['load_average_start']:.1f} at the start, {res['load_average_end']:.1f} at the "
        "end, on 2 cores: the times are upper bounds).",
        "### The map and the neighbour searches, by size (synthetic 384-wide float16 embeddings, 4 classes, "
        "1% near-copies)\n\n"
        "Server side only: PCA, building the WebGL figure and serialising it to the JSON Streamlit sends; the "
        "browser's own draw is not in them. A redraw after a selection rebuilds and resends the figure (the "
        "projection is cached in the store).\n\n"
        "| points | PCA (s) | figure + JSON (s) | first draw (s) | JSON (MB) | redraw after a selection (s) | "
        "near-duplicate search (s) | outlier score (s) |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n" + rows
        + f"\n\nThe near-duplicate search at {res['map'][-1]['n']:,} points takes "
        f"{res['map'][-1]['near_duplicate_s']:.0f} s here (above {explore.REDUCE_ABOVE:,} samples its candidates come "
        f"from a {explore.REDUCED_DIM}-wide PCA subspace and are checked in full): the page runs it once per run, "
        "epoch and threshold and keeps the answer.",
        *([browser_section(res["browser"])] if "browser" in res else []),
        "### TREC's training set (bundled MiniLM embeddings, not fine-tuned)\n\n"
        f"{t['n']:,} texts hold {t['exact_groups']} groups of identical normalised texts "
        f"({t['exact_duplicate_rows']} repeated rows; {t['exact_groups_conflicting']} groups with differing labels). "
        f"Identical-text matching finds all {t['exact_groups']} by construction; {t['exact_same_label_count']} "
        "repeats agree on the label and are counted, not flagged. Per threshold: the identical-text groups the "
        "embedding search alone finds (texts treated as all different), then the detector as it runs (identical "
        f"texts, or embeddings at the threshold whose texts share {explore.MIN_WORD_OVERLAP:.0%} of their words): "
        "its groups, those with differing labels, its largest group and its time:\n\n"
        "| cosine threshold | identical-text groups found by embeddings alone | groups in all | with differing labels "
        "| largest group | seconds |\n|---:|---:|---:|---:|---:|---:|\n" + thr_rows,
        f"Class separation of the 2-D map (10-NN accuracy on the map, TREC's 6 classes): PCA "
        f"{t['map_pca_knn_acc']:.1%} in {t['map_pca_s']:.2f} s; scikit-learn t-SNE {t['map_tsne_knn_acc']:.1%} in "
        f"{t['map_tsne_s']:.1f} s (the full 384-d embeddings: {t['full_dim_knn_acc']:.1%}). "
        + ("PCA separates the classes at least as well and stays the default."
           if pca_better else
           f"t-SNE separates the classes better, at {t['map_tsne_s'] / max(t['map_pca_s'], 1e-9):.0f}x PCA's time: "
           "PCA stays the instant default, t-SNE is offered on the page (up to "
           f"{explore.TSNE_LIMIT:,} samples) and cached once made.")
        + (f" On AG News ({res['agnews_map']['n']:,} training texts, 4 classes): PCA "
           f"{res['agnews_map']['map_pca_knn_acc']:.1%} in {res['agnews_map']['map_pca_s']:.2f} s, t-SNE "
           f"{res['agnews_map']['map_tsne_knn_acc']:.1%} in {res['agnews_map']['map_tsne_s']:.1f} s (full "
           f"embeddings {res['agnews_map']['full_dim_knn_acc']:.1%})." if "agnews_map" in res else "")
        + " UMAP and openTSNE are not installed; they were not measured.",
        *([run_section(res["run"], res["trec"])] if "run" in res else []),
        "### Injected issues (AG News)\n\n"
        f"{inj['n']:,} texts: 2,000 AG News training texts, 200 copies of 200 of them with another label, 200 IMDB "
        f"reviews with random AG labels. Near-duplicates (threshold {explore.DEFAULT_DUPLICATE_THRESHOLD}, text or "
        f"embedding): {d['copies_found']:.0%} of the copies and {d['originals_found']:.0%} of their originals "
        f"flagged, {d['others_flagged']} other samples flagged, in {d['seconds']:.2f} s (embedding search alone: "
        f"{inj['embedding_only']['copies_found']:.0%} of the copies). Outliers among the 200 IMDB reviews:\n\n"
        "| score | AUROC | flagged (median + 1.5 IQR) | false flags among the 2,200 AG texts | seconds |\n"
        "|---|---:|---:|---:|---:|\n"
        + "\n".join(f"| {m} | {inj[f'outlier_{m}']['auroc']:.3f} | {inj[f'outlier_{m}']['found']:.1%} | "
                    f"{inj[f'outlier_{m}']['false_flags']} | {inj[f'outlier_{m}']['seconds']:.2f} |"
                    for m in ("centroid", "knn")),
        f"The {best} score ranks the IMDB reviews best and is the default. The k-NN score (k = "
        f"{explore.OUTLIER_K}) fails here because 200 reviews of one corpus are each other's nearest neighbours. "
        "The flag threshold catches only a part of them: sort the Outliers view by score rather than trusting "
        "the flag alone.",
    ])


def browser_section(b: dict) -> str:
    """bench/bench_explore_browser.py's timings: the map in headless Chromium."""
    rows = "\n".join(f"| {m['n']:,} | {m['first_draw_s']:.1f} | {m['redraw_after_lasso_s']:.1f} | "
                      f"{m['selected']:,} | {m['load_average']:.1f} |" for m in b["sizes"])
    return ("### The map in a browser\n\n"
            f"`{b['command'].strip()}` at revision {b['revision']}: headless Chromium with software WebGL "
            "(SwiftShader, as on a machine without a GPU) on the same 2 cores, beside the server. First draw: from "
            "asking for the Explore page to every point drawn (the server's PCA and figure, the transfer, the "
            "browser's drawing). Redraw: from the end of a lasso over the left half of the map to the selection "
            "counted on the page and the map drawn again.\n\n"
            "| points | first draw (s) | redraw after a lasso (s) | samples selected | 1-minute load average |\n"
            "|---:|---:|---:|---:|---:|\n" + rows)


def run_section(r: dict, plain: dict) -> str:
    rows = []
    for epoch, e in sorted(r["epochs"].items(), key=lambda kv: int(kv[0])):
        tag = " (recommended)" if int(epoch) == r.get("recommended_epoch") else ""
        rows.append(f"| {epoch}{tag} | {e['map_pca_knn_acc']:.1%} ({e['map_pca_s']:.2f} s) | "
                    f"{e['map_tsne_knn_acc']:.1%} ({e['map_tsne_s']:.1f} s) | "
                    + " | ".join(f"{e[f'thr_{t}']['embedding_only_found']} of {r['exact_groups']}, "
                                 f"{e[f'thr_{t}']['groups']} / {e[f'thr_{t}']['conflicting_groups']} / "
                                 f"{e[f'thr_{t}']['largest_group']}" for t in (0.99, 0.97, 0.95)) + " |")
    return ("### The same on a run's own embeddings (fine-tuned, what the page draws)\n\n"
            f"`{r['command'].strip()}` on the CLI run in `{r['run_dir']}` ({r['n']:,} TREC training texts, "
            f"{r['exact_groups']} groups of identical texts among them; 1-minute load average "
            f"{r['load_average_start']:.1f}). Per kept epoch: the 10-NN accuracy of the 2-D map, and at each "
            "threshold the identical-text groups the embedding search alone finds, then its groups / groups with "
            "differing labels / largest group.\n\n"
            "| epoch | PCA map | t-SNE map | at 0.99 | at 0.97 | at 0.95 |\n|---|---:|---:|---:|---:|---:|\n"
            + "\n".join(rows) + "\n\n" + words_table(r) + run_reading(r, plain))


def words_table(r: dict) -> str:
    """The detector as it runs (embedding pairs that also share explore.MIN_WORD_OVERLAP of
    their words, or identical text), on the same embeddings; empty for older results."""
    rows = []
    for epoch, e in sorted(r["epochs"].items(), key=lambda kv: int(kv[0])):
        if "thr_0.97_words" not in e:
            return ""
        rows.append(f"| {epoch} | " + " | ".join(
            f"{e[f'thr_{t}_words']['exact_found']} of {r['exact_groups']}, {e[f'thr_{t}_words']['groups']} / "
            f"{e[f'thr_{t}_words']['conflicting_groups']} / {e[f'thr_{t}_words']['largest_group']}"
            for t in (0.99, 0.97, 0.95)) + " |")
    return (f"The detector as the page and `samples.csv` run it: an embedding pair counts only when the two texts "
            f"also share at least {explore.MIN_WORD_OVERLAP:.0%} of their words (Jaccard), plus identical texts. "
            "Identical-text groups found, then groups / with differing labels / largest group:\n\n"
            "| epoch | at 0.99 | at 0.97 | at 0.95 |\n|---|---:|---:|---:|\n" + "\n".join(rows) + "\n\n")


def run_reading(r: dict, plain: dict) -> str:
    """What the run's table says, in numbers taken from it."""
    rec = str(r.get("recommended_epoch"))
    e = r["epochs"].get(rec) or next(iter(r["epochs"].values()))
    thr = explore.DEFAULT_DUPLICATE_THRESHOLD
    big = e.get(f"thr_{thr}", {}).get("largest_group")
    text = (f"On the fine-tuned embeddings of epoch {rec} the map separates the classes much better (PCA "
            f"{e['map_pca_knn_acc']:.1%}, t-SNE {e['map_tsne_knn_acc']:.1%}) than the plain encoder's embeddings of "
            f"the whole training set above (PCA {plain['map_pca_knn_acc']:.1%}, t-SNE {plain['map_tsne_knn_acc']:.1%}). "
            f"But fine-tuning pulls each class together: at the default threshold {thr} the embeddings alone "
            f"chain {big} samples into one group, and at 0.99 still {e['thr_0.99']['largest_group']}.")
    words = e.get(f"thr_{thr}_words")
    if words:
        text += (f" With the word-overlap condition the detector's largest group at {thr} is "
                 f"{words['largest_group']} samples ({words['groups']} groups, {words['conflicting_groups']} with "
                 f"differing labels), and it still finds {words['exact_found']} of the {r['exact_groups']} "
                 "identical-text groups; the page warns above 50 samples in a group.")
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-explore.json")
    p.add_argument("--cache", type=Path, default=Path("/tmp/bench-explore-cache"),
                   help="where the MiniLM embeddings of TREC / the injected set are kept between runs")
    p.add_argument("--no-doc", action="store_true", help="print the section instead of updating docs/BENCHMARKS.md")
    p.add_argument("--parts", default="map,trec,agnews_map,injected",
                   help="what to measure (default all); the other parts are kept from --out's saved results")
    p.add_argument("--add-run", type=Path, default=None, metavar="DIR",
                   help="measure the map and near-duplicates on a CLI run's own embeddings (DIR = its --out) "
                        "and add them to --out's results")
    p.add_argument("--render-only", type=Path, default=None, metavar="JSON",
                   help="write the section from a saved --out file, measuring nothing")
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    command = "python bench/bench_explore.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    if a.add_run is not None:  # measure a CLI run's own embeddings and add them to the saved results
        from selfmix_core.benchmark.doc import git_revision, machine_description

        warm_up()
        res = json.loads(a.out.read_text())
        res["run"] = {"command": command, "revision": git_revision(), "machine": machine_description(),
                      "load_average_start": os.getloadavg()[0], **fine_tuned(a.add_run)}
        res["run"]["load_average_end"] = os.getloadavg()[0]
        a.out.write_text(json.dumps(res, indent=2))
        update_or_print(render(res), a.no_doc)
        return 0
    if a.render_only is not None:  # the section again from a saved run (its own command and machine)
        res = json.loads(a.render_only.read_text())
        update_or_print(render(res), a.no_doc)
        return 0
    from selfmix_core.benchmark.doc import git_revision, machine_description

    warm_up()
    rng = np.random.default_rng(SEED)
    res = {"command": command, "revision": git_revision(), "machine": machine_description(),
           "load_average_start": os.getloadavg()[0], "map": []}
    parts = {p.strip() for p in a.parts.split(",") if p.strip()}
    unknown = parts - set(PARTS)
    if unknown:
        raise SystemExit(f"--parts: unknown {sorted(unknown)}; choose from {', '.join(PARTS)}")
    if parts != set(PARTS):  # remeasure some parts: the others come from the saved results
        if not a.out.is_file():
            raise SystemExit(f"--parts needs the saved results of a full run in {a.out}")
        saved = json.loads(a.out.read_text())
        res = {**saved, **{k: res[k] for k in ("command", "revision", "machine", "load_average_start")},
               "earlier": {**{k: saved.get(k) for k in ("command", "revision", "machine")},
                           "parts": [p for p in PARTS if p not in parts]}}
    if "map" in parts:
        res["map"] = []
        for n in (int(s) for s in a.sizes.split(",")):
            res["map"].append(time_map(n, rng))
            print(json.dumps(res["map"][-1]), flush=True)
    for name, fn in (("trec", trec), ("agnews_map", agnews_map), ("injected", injected)):
        if name in parts:
            res[name] = fn(a.cache)
            print(json.dumps(res[name]), flush=True)
    res["load_average_end"] = os.getloadavg()[0]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2))
    update_or_print(render(res), a.no_doc)
    return 0


def warm_up() -> None:
    """Imports (scikit-learn, plotly) and first-call costs out of the timings."""
    import studio.charts  # noqa: F401

    explore.project(np.eye(8, dtype=np.float32), "pca")
    explore.knn_accuracy(np.eye(4, 2, dtype=np.float32), np.arange(4), k=1)


def update_or_print(text: str, no_doc: bool) -> None:
    if no_doc:
        print(text)
    else:
        from selfmix_core.benchmark.doc import update_section

        update_section("explore", text)
        print("updated section 'explore' of docs/BENCHMARKS.md")


if __name__ == "__main__":
    raise SystemExit(main())
