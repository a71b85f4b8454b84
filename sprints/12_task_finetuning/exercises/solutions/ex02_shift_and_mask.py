"""Solution 2: pad into (B, L) tensors, shift by one, -100 where the target is not trained."""

import torch


def collate(examples, pad_id):
    longest = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), longest), pad_id, dtype=torch.long)
    trained = torch.zeros((len(examples), longest), dtype=torch.bool)
    for row, (x, t) in enumerate(examples):
        ids[row, :len(x)] = torch.tensor(x)
        trained[row, :len(t)] = torch.tensor(t)
    targets = torch.where(trained[:, 1:], ids[:, 1:], torch.full_like(ids[:, 1:], -100))
    return ids[:, :-1], targets
