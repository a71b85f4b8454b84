"""Exercise 4: encode one chunk with learned merges, lowest rank first
(notes/02_bpe_merge_loop.md, "Encoding: replay the merges by rank")."""


def encode_chunk(ids: list[int], merges: list[tuple[int, int]],
                 first_id: int = 256) -> list[int]:
    """The tokens of one chunk given as its starting ids (bytes).

    ``merges[r]`` is the merge of rank r (learned r-th); it made token ``first_id + r``.
    Repeat: among the adjacent pairs of the current ids that are in ``merges``, take the one
    of lowest rank and merge all its occurrences (left to right); stop when no adjacent pair
    is in ``merges``.
    """
    raise NotImplementedError("hint: ranks = {pair: r for r, pair in enumerate(merges)}; "
                              "pick min(itertools.pairwise(ids), key=lambda p: ranks.get(p, inf))")
