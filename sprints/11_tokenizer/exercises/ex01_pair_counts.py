"""Exercise 1: count the adjacent pairs of a table of chunks (notes/02_bpe_merge_loop.md)."""


def pair_counts(chunks: dict[tuple[int, ...], int]) -> dict[tuple[int, int], int]:
    """How often each adjacent pair of ids occurs in the whole text.

    ``chunks`` maps each distinct chunk (its token ids) to how many times it occurs. A pair
    that occurs n times inside a chunk seen f times counts n * f; pairs never cross chunks.
    ``{(97, 116): 2, (116, 97, 116): 1}`` -> ``{(97, 116): 3, (116, 97): 1}``.
    """
    raise NotImplementedError("hint: for each chunk, add its count for every pair in "
                              "itertools.pairwise(ids)")
