"""Checks for the sprint 2 exercises; references: TensorDataset through a DataLoader, torch's
mean and std on everything at once, len(DataLoader)."""

import torch
from torch.utils.data import DataLoader, TensorDataset

from sprints.check import expect_close, expect_equal


def check_ex01_pair_dataset(m):
    inputs, targets = torch.randn(7, 3), torch.arange(7)
    ours = m.PairDataset(inputs, targets)
    expect_equal("len(PairDataset(7 inputs, 7 targets))", len(ours), 7)
    ref = TensorDataset(inputs, targets)
    for i in [0, 6, -1]:
        for j, name in enumerate(["input", "target"]):
            expect_equal(f"the {name} of PairDataset(...)[{i}]", ours[i][j], ref[i][j])
    for ours_batch, ref_batch in zip(DataLoader(ours, batch_size=3),
                                     DataLoader(ref, batch_size=3), strict=True):
        for j, name in enumerate(["inputs", "targets"]):
            expect_equal(f"the {name} of a DataLoader(PairDataset, batch_size=3) batch",
                         ours_batch[j], ref_batch[j])


def check_ex02_mean_std(m):
    images = torch.rand(10, 3, 5, 4) * torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1, 1) + 0.3
    batches = [images[:4], images[4:9], images[9:]]
    mean, std = m.channel_mean_std(iter(batches))
    call = "channel_mean_std(batches of 4, 5 and 1 images of shape (3, 5, 4))"
    expect_close(f"mean of {call}", mean, images.mean(dim=(0, 2, 3)))
    expect_close(f"std of {call}", std, images.transpose(0, 1).reshape(3, -1).std(dim=1,
                                                                                  correction=0))


def check_ex03_num_batches(m):
    for n, b in [(10, 3), (9, 3), (2, 5), (0, 4), (60000, 128)]:
        for drop_last in (False, True):
            loader = DataLoader(range(n), batch_size=b, drop_last=drop_last)
            expect_equal(f"num_batches({n}, {b}, drop_last={drop_last})",
                         m.num_batches(n, b, drop_last), len(loader))


CHECKS = [check_ex01_pair_dataset, check_ex02_mean_std, check_ex03_num_batches]
