"""selfmix_core.benchmark.ensemble (bench/bench_flag_ensemble.py): each way of choosing flags from epochs, scored on synthetic runs,
and its docs section redrawn from the committed run files."""

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module():
    from selfmix_core.benchmark import ensemble

    return ensemble


def _epoch(epoch, phase, clean_prob, val_accuracy=None, n_val=0, recommended=None, norm_loss=None):
    cp = np.asarray(clean_prob, float)
    return {"epoch": epoch, "phase": phase, "clean_prob": cp,
            "norm_loss": np.asarray(norm_loss, float) if norm_loss is not None else 1 - cp,
            "val_accuracy": val_accuracy, "n_val": n_val, "recommended_epoch": recommended}


def test_each_way_uses_the_epochs_it_names():
    ens = _module()
    epochs = [_epoch(1, "warmup", [0.9, 0.1, 0.5, 0.5], 0.50, 100),
              _epoch(2, "warmup", [0.7, 0.3, 0.5, 0.6], 0.60, 100),
              _epoch(3, "selfmix", [0.1, 0.9, 0.2, 0.8], 0.58, 100),
              _epoch(4, "selfmix", [0.3, 0.7, 0.4, 1.0], 0.40, 100, recommended=2)]
    ways = ens.suspicion_by_way(epochs)
    np.testing.assert_allclose(ways["rule"], [0.3, 0.7, 0.5, 0.4])  # epoch 2, the recommended one
    np.testing.assert_allclose(ways["last"], [0.7, 0.3, 0.6, 0.0])
    np.testing.assert_allclose(ways["mean clean_prob, all epochs"], [0.5, 0.5, 0.6, 0.275])
    np.testing.assert_allclose(ways["mean clean_prob, SelfMix epochs"], [0.8, 0.2, 0.7, 0.1])
    # best held-out 0.60, one standard error sqrt(.6 * .4 / 100) = 0.049: epochs 2 and 3, not 1 or 4
    np.testing.assert_allclose(ways["mean clean_prob, held-out top"], [0.6, 0.4, 0.65, 0.3])
    # ranks of the loss, 0 = lowest: epoch 3's losses 0.9, 0.1, 0.8, 0.2 -> 1, 0, 2/3, 1/3;
    # epoch 4's 0.7, 0.3, 0.6, 0.0 -> 1, 1/3, 2/3, 0
    np.testing.assert_allclose(ways["mean loss rank, SelfMix epochs"], [1.0, 1 / 6, 2 / 3, 1 / 6])


def test_ways_without_their_epochs_are_left_out():
    ens = _module()
    ways = ens.suspicion_by_way([_epoch(1, "warmup", [0.9, 0.1]), _epoch(2, "warmup", [0.8, 0.2])])
    assert set(ways) == {"rule", "last", "mean clean_prob, all epochs", "mean loss rank, all epochs"}
    np.testing.assert_allclose(ways["rule"], ways["last"])  # no recommendation: the last epoch


def test_summary_counts_runs_within_002_of_their_best_epoch():
    ens = _module()
    docs = [{"epochs": [{"auroc": 0.90}, {"auroc": 0.80}], "ways": {"rule": 0.89, "last": 0.80}},
            {"epochs": [{"auroc": 0.70}, {"auroc": 0.75}], "ways": {"rule": 0.70, "last": 0.75}}]
    s = ens.summarise(docs)
    assert s["rule"] == {"within": 1, "runs": 2, "mean": pytest.approx(0.795)}
    assert s["last"] == {"within": 1, "runs": 2, "mean": pytest.approx(0.775)}


def test_render_without_runs_is_a_clear_error(tmp_path, capsys):
    ens = _module()
    assert ens.main(["render", str(tmp_path), "--no-doc"]) == 2
    assert "no run files" in capsys.readouterr().err


def test_section_redraws_from_its_run_files(monkeypatch):
    """The committed section is what `render` makes of the committed run files it names."""
    import re

    from selfmix_core.benchmark.doc import DOC
    from selfmix_core.benchmark.summary import committed_section

    committed = committed_section("flag-ensemble", DOC)
    assert committed is not None, "docs/BENCHMARKS.md has no flag-ensemble section"
    folders = re.search(r"then `python bench/bench_flag_ensemble\.py render ([^`]*)`", committed).group(1).split()
    monkeypatch.chdir(ROOT)  # the command runs from the repository root
    assert _module().render(folders).strip() == committed


def test_runs_the_commands_name_but_that_never_ran_are_listed():
    ens = _module()
    cmd = "python bench/bench_flag_ensemble.py run --out x --dataset trec --max-train-samples 1000 --noise asym:0.4 --seeds 0,1"
    docs = [{"key": "trec-asym-0.4-selfmix-0", "n_train": 1000, "command": cmd},
            {"key": "trec-asym-0.4-selfmix-1", "n_train": 2000, "command": cmd}]  # another size: not this command's
    assert ens.missing_runs(docs) == ["TREC-1,000 asym 40% seed 1"]


@pytest.mark.parametrize("args, words", [(["--seeds", "0,x"], "seeds must be comma-separated integers"),
                                         (["--noise", "loud:0.4"], "noise"),
                                         ([], "does not exist (is --data-root right?)")])
def test_run_with_bad_input_is_a_clear_error(tmp_path, capsys, args, words):
    ens = _module()
    argv = ["run", "--dataset", "trec", "--max-train-samples", "10", "--noise", "asym:0.4", "--out", str(tmp_path),
            "--data-root", str(tmp_path)] + args
    assert ens.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and "Traceback" not in err
