"""Solution 2: one left-to-right pass; a matched pair consumes both ids, so [1, 1, 1] gives
[new, 1] and never [1, new]."""


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out
