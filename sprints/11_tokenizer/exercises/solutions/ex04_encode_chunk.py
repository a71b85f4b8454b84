"""Solution 4: merging by rank replays training in its order, so a chunk of the training text
ends up split exactly as training left it."""

import math
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


def encode_chunk(ids: list[int], merges: list[tuple[int, int]],
                 first_id: int = 256) -> list[int]:
    ranks = {pair: r for r, pair in enumerate(merges)}
    ids = list(ids)
    while len(ids) > 1:
        pair = min(pairwise(ids), key=lambda p: ranks.get(p, math.inf))
        if pair not in ranks:
            break  # no adjacent pair was ever merged
        ids = _merge(ids, pair, first_id + ranks[pair])
    return ids
