"""Exercise 2: one BPE merge inside one chunk (notes/02_bpe_merge_loop.md)."""


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """A new list: every occurrence of ``pair`` in ``ids`` replaced by ``new_id``, scanning
    left to right, occurrences never overlapping: ``[1, 1, 1]`` with ``(1, 1)`` -> ``[new_id, 1]``.
    ``ids`` itself is left as it was."""
    raise NotImplementedError("hint: walk an index i; if ids[i], ids[i + 1] is the pair, "
                              "append new_id and step 2, else append ids[i] and step 1")
