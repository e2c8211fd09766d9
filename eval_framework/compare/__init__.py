"""Compare checkpoint versions across tasks: aggregates, and paired tests against a baseline.

    from eval_framework.compare import compare
    comparison = compare(["outputs/"], baseline="v40")
    test = comparison.find("v41", "ARC", "acc")   # .result: difference, CI, p-value, n shared

``compare_evaluations`` tests one candidate against one baseline on a task and metric (what a
promotion rule calls); ``stats`` holds the tests themselves. Rendering: ``render`` (table,
markdown, JSON), ``plot_png`` and ``plot_html``; ``wandb_log`` logs a comparison to W&B.
"""

from eval_framework.compare.build import (
    JSON_SCHEMA,
    Comparison,
    MetricComparison,
    build_comparison,
    compare,
    compare_evaluations,
)
from eval_framework.compare.collect import Evaluation, MetricValue, Version, collect, read_evaluation
from eval_framework.compare.stats import PairedResult, mcnemar_exact, paired_bootstrap, paired_test

__all__ = [
    "JSON_SCHEMA",
    "Comparison",
    "Evaluation",
    "MetricComparison",
    "MetricValue",
    "PairedResult",
    "Version",
    "build_comparison",
    "collect",
    "compare",
    "compare_evaluations",
    "mcnemar_exact",
    "paired_bootstrap",
    "paired_test",
    "read_evaluation",
]
