"""Reports from an experiment run: the paper's Table 5, Figures 4/5-style curves and Z-tests.

``build_report(run_dir)`` turns ``run_dir/summary.json`` into ``run_dir/report.md`` plus PNGs under
``run_dir/plots/``; the other functions are its pure building blocks. Plots need the ``plots`` extra.
"""

from clickloop.report.markdown import build_report, load_summary, render_report
from clickloop.report.plots import plot_curves
from clickloop.report.stats import (
    STRATEGY_ORDER,
    PairwiseTest,
    best_strategy,
    failed_cells,
    incomplete_results,
    ordered_strategies,
    pairwise_tests,
    two_proportion_ztest,
    validate_summary,
    wilson_interval,
)
from clickloop.report.tables import iteration_table, llm_table, table5, table5_plain, ztest_table

__all__ = [
    "STRATEGY_ORDER",
    "PairwiseTest",
    "best_strategy",
    "build_report",
    "failed_cells",
    "incomplete_results",
    "iteration_table",
    "llm_table",
    "load_summary",
    "ordered_strategies",
    "pairwise_tests",
    "plot_curves",
    "render_report",
    "table5",
    "table5_plain",
    "two_proportion_ztest",
    "validate_summary",
    "wilson_interval",
    "ztest_table",
]
