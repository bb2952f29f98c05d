"""Pearson's chi-square goodness-of-fit test for the sampling tests (torch only).

Same statistic and p-value as `scipy.stats.chisquare`: the statistic is
sum((observed - expected)^2 / expected) with k - 1 degrees of freedom, and the p-value is
the chi-square survival function, the regularised upper incomplete gamma function
Q(dof / 2, statistic / 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch


class ChiSquareResult(NamedTuple):
    statistic: float
    pvalue: float


def chisquare(
    f_obs: np.ndarray | torch.Tensor, f_exp: Sequence[float] | None = None
) -> ChiSquareResult:
    """Test that the counts `f_obs` follow `f_exp` (default: all categories equally likely)."""
    observed = torch.as_tensor(np.asarray(f_obs), dtype=torch.float64).flatten()
    expected = (
        torch.full_like(observed, float(observed.mean()))
        if f_exp is None
        else torch.as_tensor(np.asarray(f_exp), dtype=torch.float64).flatten()
    )
    if expected.shape != observed.shape:
        raise ValueError("observed and expected counts differ in length")
    statistic = ((observed - expected) ** 2 / expected).sum()
    dof = torch.tensor(observed.numel() - 1, dtype=torch.float64)
    pvalue = torch.special.gammaincc(dof / 2, statistic / 2)
    return ChiSquareResult(float(statistic), float(pvalue))
