"""selfmix_core.preflight: the stratified sample, the suggested max length, the timed
steps and the run-time estimate."""

from __future__ import annotations

import numpy as np
import pytest

from selfmix_core import preflight
from selfmix_core.model import build_classifier, load_tokenizer
from selfmix_core.preflight import estimate_run_seconds, stratified_sample, suggest_max_length, time_training_steps
from tests.tiny_model import tiny_config, tiny_frame, tiny_model_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("model"))


def test_stratified_sample_keeps_the_class_proportions():
    labels = np.array([0] * 600 + [1] * 300 + [2] * 90 + [3] * 10)
    idx = stratified_sample(labels, 100, seed=1)
    assert len(idx) == 100 and len(set(idx.tolist())) == 100 and list(idx) == sorted(idx)
    assert np.bincount(labels[idx]).tolist() == [60, 30, 9, 1]
    assert np.array_equal(idx, stratified_sample(labels, 100, seed=1))  # seeded
    assert not np.array_equal(idx, stratified_sample(labels, 100, seed=2))


def test_stratified_sample_keeps_every_class_while_it_can_and_sums_to_n():
    labels = np.array([0] * 97 + [1, 2, 3])
    idx = stratified_sample(labels, 10)
    assert len(idx) == 10 and set(labels[idx]) == {0, 1, 2, 3}
    for n in (1, 3, 7, 33, 99):
        assert len(stratified_sample(labels, n)) == n
    assert len(stratified_sample(labels, 2)) == 2  # fewer than the classes: still n rows
    assert np.array_equal(stratified_sample(labels, 500), np.arange(100))  # n >= rows: every row
    with pytest.raises(ValueError):
        stratified_sample(labels, 0)


def test_suggest_max_length_is_the_95th_percentile_rounded_up_to_8(model_dir):
    tok = load_tokenizer(str(model_dir))
    texts = ["apple"] * 95 + ["apple " * 40] * 5
    lengths = preflight.token_lengths(texts, tok)
    assert lengths.min() == 3  # [CLS] apple [SEP]
    assert suggest_max_length(texts, tok) == 8  # 95% are 3 tokens long: the 5 long texts are cut
    assert suggest_max_length(texts, tok, q=99) == 48  # 42 tokens -> 48
    assert suggest_max_length(texts, tok, q=99, cap=32) == 32
    assert suggest_max_length([], tok) == 8


def test_time_training_steps_is_cached_and_estimates_scale(model_dir):
    frame = tiny_frame(24)
    config = tiny_config(model_dir)
    names = sorted(set(frame["label"]))
    labels = [names.index(v) for v in frame["label"]]
    bundle = build_classifier(3, config.model)
    preflight._STEP_CACHE.clear()
    per_sample = time_training_steps(config, frame["text"], labels, 3, steps=2, bundle=bundle)
    assert per_sample > 0
    assert time_training_steps(config, frame["text"], labels, 3, bundle=None) == per_sample  # cached: no load
    est = estimate_run_seconds(per_sample, 1000, epochs=6, warmup_epochs=2)
    assert est["selfmix_epoch_s"] > est["warmup_epoch_s"] > per_sample * 1000
    assert est["run_s"] == pytest.approx(2 * est["warmup_epoch_s"] + 4 * est["selfmix_epoch_s"])
    assert est["epoch_s"] == est["selfmix_epoch_s"]
    ce = estimate_run_seconds(0.01, 100, epochs=3, warmup_epochs=1, method="ce")
    assert ce["run_s"] == pytest.approx(3 * ce["warmup_epoch_s"])
    with pytest.raises(ValueError):
        estimate_run_seconds(-1.0, 10, 1, 1)
