"""Solution 1: a pair inside a chunk counts as often as the chunk occurs."""

from collections import Counter
from itertools import pairwise


def pair_counts(chunks: dict[tuple[int, ...], int]) -> dict[tuple[int, int], int]:
    counts: Counter[tuple[int, int]] = Counter()
    for ids, freq in chunks.items():
        for pair in pairwise(ids):
            counts[pair] += freq
    return dict(counts)
