"""The A-GEM authors' initialisation of fully connected layers, as an option.

Their TensorFlow code (facebookresearch/agem, `model/model.py`: `weight_variable`,
`bias_variable`) draws every weight from a normal distribution of standard deviation 0.1
truncated at two standard deviations (`tf.truncated_normal_initializer(stddev=0.1)`) and
sets every bias to 0.1. PyTorch's default for `nn.Linear` is uniform in
±1/sqrt(fan_in) with uniform biases.
"""

from __future__ import annotations

import torch
from torch import nn

STD = 0.1
BIAS = 0.1


@torch.no_grad()
def truncated_normal_(model: nn.Module, *, std: float = STD, bias: float = BIAS) -> nn.Module:
    """Re-initialise every `nn.Linear` of `model` in place as the authors' code does
    (weights ~ N(0, std^2) cut at ±2 std, biases = `bias`), from torch's global RNG."""
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, mean=0.0, std=std, a=-2 * std, b=2 * std)
            if module.bias is not None:
                module.bias.fill_(bias)
    return model
