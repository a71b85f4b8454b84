"""Exercise 2: a batch for instruction tuning: pad, shift, mask (results/instruction_data.py)."""

import torch


def collate(examples: list[tuple[list[int], list[bool]]], pad_id: int
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """examples: (ids, trained) pairs; trained[i] says whether token i is part of the
    response (its closing <|endoftext|> included). Pad every ids list on the right with
    pad_id to the longest one (padding is not trained), then return (inputs, targets), both
    (B, longest - 1) LongTensors: inputs = ids[:-1], targets = ids[1:] with -100 wherever
    the target token is not trained (prompt or padding)."""
    raise NotImplementedError("hint: build (B, L) ids and trained tensors, slice [:, :-1] and "
                              "[:, 1:], then torch.where(trained, ids, -100)")
