"""The benchmark harness on tiny data: cells written atomically, resume without rerunning, tables."""

import json

import numpy as np
import pytest
import torch

from selfmix_core.benchmark.harness import BenchSettings, grid, parse_methods, parse_noise, run_bench
from selfmix_core.benchmark.render import render


def write_tiny_dataset(root, name="tiny", n_train=48, n_test=24):
    """root/name/{train,test}.csv + labels.txt: 3 classes told apart by their words."""
    from tests.conftest import WORDS

    folder = root / name
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for file, n in (("train.csv", n_train), ("test.csv", n_test)):
        rows = ["label,text"]
        for i in range(n):
            y = i % 3
            rows.append(f"{y},the {' '.join(rng.choice(WORDS[y], size=4))}")
        (folder / file).write_text("\n".join(rows) + "\n")
    (folder / "labels.txt").write_text("fruit\nvehicle\ncolour\n")
    return root


SETTINGS = BenchSettings(max_train_samples=36, max_test_samples=18, max_length=16, epochs=2, warmup_epochs=1,
                         lr=1e-3, batch_size=8, cv_folds=2, cv_epochs=1)


class CountingFactory:
    """Wraps the tiny model factory and counts models made (one run = at least one model)."""

    def __init__(self, make):
        self.make, self.calls = make, 0

    def __call__(self, k, seed=0):
        self.calls += 1
        return self.make(k, seed)


def test_parsers():
    assert parse_noise("asym:0.2, idn:0.4,none") == [("asym", 0.2), ("idn", 0.4), ("none", 0.0)]
    for bad in ("asym", "asym:1.5", "bogus:0.2", ""):
        with pytest.raises(ValueError):
            parse_noise(bad)
    assert parse_methods("ce,ablations,ce") == ["ce", "selfmix-no-lp", "selfmix-no-lr", "selfmix-no-mixup"]
    with pytest.raises(ValueError, match="unknown method"):
        parse_methods("ce,nope")
    cells = grid(["trec"], [("asym", 0.4)], ["ce", "selfmix"], [0, 1])
    assert [c.key for c in cells] == ["trec-asym-0.4-ce-0", "trec-asym-0.4-selfmix-0", "trec-asym-0.4-ce-1",
                                      "trec-asym-0.4-selfmix-1"]
    with pytest.raises(ValueError):
        BenchSettings(epochs=2, warmup_epochs=2)


def test_harness_writes_cells_resumes_and_renders(tmp_path, tiny_model_factory, tokenizer, monkeypatch):
    from selfmix_core.benchmark.doc import machine_description
    from selfmix_core.benchmark.methods.base import Method

    ran = {}  # method name -> the config its (last) trainer ran with
    real_trainer = Method._trainer

    def recording_trainer(self, *args, **kw):
        trainer = real_trainer(self, *args, **kw)
        ran[self.name] = trainer.config.to_dict()
        return trainer

    monkeypatch.setattr(Method, "_trainer", recording_trainer)
    root = write_tiny_dataset(tmp_path / "data")
    out = tmp_path / "out"
    cells = grid(["tiny"], [("asym", 0.3)], ["ce", "selfmix", "cl", "co-teaching"], [0])
    factory = CountingFactory(tiny_model_factory)
    summary = run_bench(cells, SETTINGS, out, root, model_factory=factory, tokenizer=tokenizer, device="cpu",
                        log=lambda m: None, command="first")
    assert [r["key"] for r in summary["ran"]] == [c.key for c in cells] and not summary["failed"]
    made = factory.calls
    for c in cells:
        doc = json.loads((out / "cells" / f"{c.key}.json").read_text())
        assert doc["key"] == c.key and len(doc["epochs"]) == 2
        assert 0 <= doc["best_test_accuracy"] <= 1 and doc["n_train"] == 36 and doc["n_test"] == 18
        assert doc["noise"]["rate_realised"] == pytest.approx(0.3, abs=0.02)
        assert doc["peak_rss_mb"] > 0 and doc["seconds_per_epoch"] > 0
        assert (doc["detection_last"] is None) == (c.method == "ce")
        if c.method == "cl":  # the settings' folds and CV epochs reach the method
            assert (doc["extras"]["cv_folds"], doc["extras"]["cv_epochs"]) == (2, 1)
        assert doc["config"] == ran[c.method]  # the configuration the trainer ran, not the harness's draft
        assert doc["machine"] == machine_description()
    # selfmix's own configure() turns on its held-out slice: the cell says so, CE's does not
    selfmix_doc, ce_doc = (json.loads((out / "cells" / f"tiny-asym-0.3-{m}-0.json").read_text()) for m in ("selfmix", "ce"))
    assert selfmix_doc["config"]["validation"]["fraction"] > 0 == ce_doc["config"]["validation"]["fraction"]
    assert not list((out / "cells").glob(".*"))  # no temp files left behind

    # Same grid plus one seed: only the new cells run; finished cells are not touched.
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}
    more = grid(["tiny"], [("asym", 0.3)], ["ce", "selfmix"], [0, 1])
    factory.calls = 0
    summary = run_bench(more, SETTINGS, out, root, model_factory=factory, tokenizer=tokenizer, device="cpu",
                        log=lambda m: None, command="second")
    assert sorted(summary["skipped"]) == ["tiny-asym-0.3-ce-0", "tiny-asym-0.3-selfmix-0"]
    assert [r["key"] for r in summary["ran"]] == ["tiny-asym-0.3-ce-1", "tiny-asym-0.3-selfmix-1"]
    assert factory.calls == 2  # one model per new CE / SelfMix cell, none for the skipped ones
    for name, t in mtimes.items():
        assert (out / "cells" / name).stat().st_mtime_ns == t

    # Fully done: a rerun builds no model at all.
    factory.calls = 0
    summary = run_bench(more, SETTINGS, out, root, model_factory=factory, tokenizer=tokenizer, device="cpu",
                        log=lambda m: None)
    assert factory.calls == 0 and not summary["ran"] and len(summary["skipped"]) == 4
    assert len((out / "runs.jsonl").read_text().splitlines()) == 3

    # Other settings into the same folder are refused.
    with pytest.raises(ValueError, match="other settings"):
        run_bench(more, BenchSettings(**{**SETTINGS.to_dict(), "epochs": 3}), out, root, model_factory=factory,
                  tokenizer=tokenizer, device="cpu", log=lambda m: None)

    md = render(out, "tiny bench")
    assert "Asymmetric noise (paper Table 3 layout)" in md
    assert f"Machine: {machine_description()}." in md  # from the cells (all recorded the same machine)
    assert "| `ce` | best |" in md and "| `selfmix` | best |" in md and "| last |" in md
    assert "Detection head-to-head" in md and "cleanlab, K-fold CV probabilities" in md
    assert "SelfMix per seed" in md and "Test accuracy and memorisation per epoch" in md
    assert "first" in md and "second" in md  # the commands that made the cells


def test_machine_line_comes_from_the_cells():
    from selfmix_core.benchmark.render import machine_line

    a = "box A; torch 2 (1 thread)"
    assert machine_line([{"machine": a}, {"machine": a}]) == a
    assert machine_line([{"machine": a}, {"machine": "box B"}]) == "box A; torch 2 (1 thread) (1 cell); box B (1 cell)"
    old = {"machine": None, "torch_threads": 1}
    assert machine_line([old, old]) == ("not recorded by the 2 cells (made before cells recorded their machine; "
                                        "torch threads per cell: 1)")
    assert machine_line([{"machine": a}, old]) == (f"{a} (1 cell); not recorded by 1 cell (made before cells "
                                                   "recorded their machine; torch threads per cell: 1)")


def test_folder_made_before_cv_epochs_ran_cl_for_the_warmup_epochs(tmp_path):
    # A bench.json without cv_epochs: CL's folds trained warmup_epochs epochs then, so
    # only that value extends the folder; the new default (3) is refused.
    from selfmix_core.benchmark.harness import check_settings

    old = {k: v for k, v in SETTINGS.to_dict().items() if k != "cv_epochs"}
    (tmp_path / "bench.json").write_text(json.dumps({"settings": old}))
    check_settings(tmp_path, SETTINGS)  # cv_epochs=1 == warmup_epochs
    with pytest.raises(ValueError, match="cv_epochs was 1, now 3"):
        check_settings(tmp_path, BenchSettings(**{**SETTINGS.to_dict(), "cv_epochs": 3}))


def test_cells_run_without_the_speed_options_unless_the_folder_asks(tmp_path):
    # A folder made before BenchSettings.speed existed ran its cells on the old path: it
    # extends only without --speed, and cell_config keeps every SpeedConfig option off.
    from selfmix_core.benchmark.harness import Cell, cell_config, check_settings
    from selfmix_core.config import SpeedConfig

    old = {k: v for k, v in SETTINGS.to_dict().items() if k != "speed"}
    (tmp_path / "bench.json").write_text(json.dumps({"settings": old}))
    check_settings(tmp_path, SETTINGS)
    with pytest.raises(ValueError, match="speed was False, now True"):
        check_settings(tmp_path, BenchSettings(**{**SETTINGS.to_dict(), "speed": True}))
    cell = Cell("trec", "asym", 0.4, "selfmix", 0)
    assert cell_config(cell, SETTINGS, "cpu").speed == SpeedConfig.off()
    assert cell_config(cell, BenchSettings(**{**SETTINGS.to_dict(), "speed": True}), "cpu").speed == SpeedConfig()


def test_speed_off_turns_single_options_off(tmp_path):
    # --speed-off measures what one option changes: the folder pins it, the cells run without it.
    from selfmix_core.benchmark.harness import Cell, cell_config, check_settings, settings_from_args
    from selfmix_core.cli import build_parser
    from selfmix_core.config import SpeedConfig

    one_off = BenchSettings(**{**SETTINGS.to_dict(), "speed": True, "speed_off": "bf16_cpu, group_by_length"})
    cell = Cell("trec", "asym", 0.4, "selfmix", 0)
    assert cell_config(cell, one_off, "cpu").speed == SpeedConfig(bf16_cpu=False, group_by_length=False)
    check_settings(tmp_path, one_off)
    with pytest.raises(ValueError, match="speed_off was 'bf16_cpu, group_by_length', now ''"):
        check_settings(tmp_path, BenchSettings(**{**SETTINGS.to_dict(), "speed": True}))
    with pytest.raises(ValueError, match="unknown option.*group_chunk.*switches are"):
        BenchSettings(speed=True, speed_off="group_chunk")  # a number, not a switch
    with pytest.raises(ValueError, match="needs speed"):
        BenchSettings(speed_off="bf16_cpu")
    a = build_parser().parse_args(["bench", "--out", str(tmp_path / "x"), "--speed-off", "bf16_cpu"])
    assert settings_from_args(a).speed and settings_from_args(a).speed_off == "bf16_cpu"


def test_failed_cell_is_not_written_and_budget_stops(tmp_path, tiny_model_factory, tokenizer):
    root = write_tiny_dataset(tmp_path / "data")
    out = tmp_path / "out"

    def broken(k, seed=0):
        raise RuntimeError("boom")

    summary = run_bench(grid(["tiny"], [("asym", 0.3)], ["ce"], [0]), SETTINGS, out, root, model_factory=broken,
                        tokenizer=tokenizer, device="cpu", log=lambda m: None)
    assert summary["failed"][0]["key"] == "tiny-asym-0.3-ce-0" and not (out / "cells" / "tiny-asym-0.3-ce-0.json").exists()
    summary = run_bench(grid(["tiny"], [("asym", 0.3)], ["ce"], [0, 1]), SETTINGS, out, root,
                        model_factory=tiny_model_factory, tokenizer=tokenizer, device="cpu", log=lambda m: None,
                        max_minutes=0)
    assert summary["not_run"] == ["tiny-asym-0.3-ce-0", "tiny-asym-0.3-ce-1"]


def test_cli_end_to_end_updates_only_its_section(tmp_path, tokenizer):
    """`python -m selfmix_core bench` with a tiny saved BERT: cells, doc section, other sections kept."""
    from transformers import BertConfig, BertModel

    from selfmix_core.cli import main

    model_dir = tmp_path / "tiny-bert"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                             num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
                  ).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    root = write_tiny_dataset(tmp_path / "data")
    doc = tmp_path / "BENCH.md"
    doc.write_text("# Benchmarks\n\n<!-- BEGIN other -->\nkeep me\n<!-- END other -->\n")
    args = ["bench", "--title", "Tiny bench, 36 texts", "--data-root", str(root), "--datasets", "tiny",
            "--noise", "idn:0.25", "--methods", "ce,selfmix",
            "--seeds", "0", "--max-train-samples", "36", "--max-length", "16", "--epochs", "2", "--warmup-epochs", "1",
            "--lr", "1e-3", "--batch-size", "8", "--model", str(model_dir), "--device", "cpu", "--threads", "1",
            "--out", str(tmp_path / "out"), "--doc", str(doc), "--section", "tiny"]
    n_threads = torch.get_num_threads()
    try:
        assert main(args) == 0
    finally:
        torch.set_num_threads(n_threads)
    text = doc.read_text()
    assert "keep me" in text and "<!-- BEGIN tiny -->" in text
    assert "Instance-dependent noise (paper Table 4 layout)" in text
    cell = json.loads((tmp_path / "out" / "cells" / "tiny-idn-0.25-selfmix-0.json").read_text())
    assert cell["config"]["selection"]["class_reg"] is True and cell["config"]["loss"]["lambda_p"] == 0.0
    # --render-only redraws the same section: the heading from the runs log, the cells' thread count
    before = text.split("<!-- BEGIN tiny -->")[1]
    assert "## Tiny bench, 36 texts" in before and "(1 thread)" in before
    assert main(["bench", "--out", str(tmp_path / "out"), "--render-only", "--doc", str(doc), "--section", "tiny"]) == 0
    assert doc.read_text().split("<!-- BEGIN tiny -->")[1] == before
    assert main(["bench", "--out", str(tmp_path / "nothing"), "--render-only", "--no-doc"]) == 2
    assert main(args[:-8] + ["--noise", "bogus:1", "--out", str(tmp_path / "o2"), "--no-doc"]) == 2


def test_machine_description_says_whether_the_cpu_computes_bf16(monkeypatch):
    """The speed path runs in bf16 only on a CPU that has it natively, so a cell's machine line says which:
    two machines of the same model name can otherwise give different --speed numbers unexplained."""
    from selfmix_core import speed
    from selfmix_core.benchmark.doc import machine_description

    for native, words in ((True, "(native bf16)"), (False, "(no native bf16)")):
        monkeypatch.setattr(speed, "cpu_supports_bf16", lambda native=native: native)
        text = machine_description(threads=1)
        assert words in text and text.index(words) < text.index(" cores")
