"""Solution 3: recount every pair after each merge (simple; a fast trainer updates only the
chunks that held the pair, as the note shows)."""

from collections import Counter
from itertools import pairwise


def _merge(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_bpe(chunks: dict[tuple[int, ...], int], num_merges: int,
              first_id: int = 256) -> list[tuple[int, int]]:
    words = [(list(ids), freq) for ids, freq in chunks.items()]
    merges = []
    for step in range(num_merges):
        counts: Counter[tuple[int, int]] = Counter()
        for ids, freq in words:
            for pair in pairwise(ids):
                counts[pair] += freq
        if not counts:
            break  # every chunk is one token
        # Largest count first; among equal counts the smallest (a, b).
        best = max(counts, key=lambda p: (counts[p], -p[0], -p[1]))
        merges.append(best)
        words = [(_merge(ids, best, first_id + step), freq) for ids, freq in words]
    return merges
