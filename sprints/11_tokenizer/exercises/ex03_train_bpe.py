"""Exercise 3: the BPE training loop (notes/02_bpe_merge_loop.md)."""


def train_bpe(chunks: dict[tuple[int, ...], int], num_merges: int,
              first_id: int = 256) -> list[tuple[int, int]]:
    """Learn up to ``num_merges`` merges from a table of chunks (ids -> how often the chunk
    occurs), in the order learned.

    Each step: count the adjacent pairs over all chunks (exercise 1), take the pair with the
    largest count, ties to the smallest pair ``(a, b)`` (smallest a, then smallest b), and
    replace it in every chunk (exercise 2) by the next new id: merge number ``i`` (0-based)
    makes token ``first_id + i``. Stop early when no chunk has a pair left.
    """
    raise NotImplementedError("hint: loop num_merges times: counts = pair counts, "
                              "best = max(counts, key=lambda p: (counts[p], -p[0], -p[1])), "
                              "then merge it in every chunk")
