"""The evaluator: one plugin (`EvaluationPlugin`) made of three parts.

- `plugin.py`: the hooks, the accuracy matrix, b_j, the records and their checkpoint;
- `lca.py`: the LCA probe (capped test subsets, the accuracies after each early minibatch);
- `statistics.py`: training loss and accuracy per epoch, accumulated on the device.
"""

from agem.core.evaluation.plugin import (
    EVAL_EVERY,
    LCA_ORIGIN,
    Evaluated,
    EvaluationPlugin,
    peak_rss_bytes,
)

__all__ = ["EVAL_EVERY", "LCA_ORIGIN", "Evaluated", "EvaluationPlugin", "peak_rss_bytes"]
