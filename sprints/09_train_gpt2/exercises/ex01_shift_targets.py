"""Exercise 1: inputs and targets of next-token prediction (notes/02_lm_objective_and_perplexity.md,
notes/03_data_pipeline.md)."""

import torch


def inputs_and_targets(tokens: torch.Tensor, starts: list[int], block_size: int
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """For a 1-D token tensor, return x and y of shape (len(starts), block_size):
    row i of x is the window at starts[i], and y is the same window moved one token right."""
    raise NotImplementedError(
        "hint: x row = tokens[s : s + block_size], y row = tokens[s + 1 : s + 1 + block_size]")
