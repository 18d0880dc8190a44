"""The benchmark: the paper's comparison run with this project's code (`python -m selfmix_core bench`).

    harness   grid, cells, running and resuming (`bench` subcommand: add_parser, cmd_bench)
    render    the markdown tables of one output folder, drawn from its result cells
    summary   the hand-written reading guides (docs/summaries/), every number computed from the cells
    expr      the restricted evaluator of the guides' expressions (no eval)
    trust     issue #9's trust section (bench/bench_trust.py is its command)
    doc       writing one named section of docs/BENCHMARKS.md; the machine description
    paper     the SelfMix paper's published accuracies (Tables 3-5)
    methods   CE, SelfMix and its variants, and the baselines, behind one interface

Only the benchmark uses this package: the app and `python -m selfmix_core train` train with
selfmix_core.trainer directly and build their outputs with selfmix_core.records, which the
harness imports too (neither the CLI's train path nor records imports anything here).
"""
