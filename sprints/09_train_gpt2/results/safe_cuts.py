"""Where a text can be cut so that tokenizing the parts gives exactly the ids of the whole.

GPT-2 first splits text with one regular expression (its *pre-tokenizer*),

    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+

and then runs BPE inside each match on its own. So two texts tokenize independently wherever
the regex is guaranteed to end one match and start the next, whatever comes before or after.
No alternative runs from a non-whitespace character into a whitespace one (a leading space is
only allowed at a match's start), so:

    a cut at position p is safe when text[p - 1] is not whitespace and text[p] is an ASCII
    whitespace character (space, tab, newline, CR, VT, FF).

The match holding text[p - 1] ends there, the regex engine restarts at p in both cases, and
nothing before p looked past p (the greedy runs before p stop at text[p] exactly as they stop
at the end of the shorter text). "hello world" -> "hello" | " world": GPT-2's own split.
``FINE_CUT`` adds cuts between ASCII letters, digits and punctuation (a letter run stops at a
digit, a digit run at a letter, a punctuation run at a letter or digit, except after ``'``,
which may start the contraction ``'s``). Only ASCII classes are used, so the rule does not
depend on which Unicode version a regex engine knows; "not whitespace" is Python's ``\\S``,
which excludes every character Unicode calls White_Space (and a few more), so it is never
wider than the engines' ``\\S``. tests/test_sprint09_prepare_data.py checks every cut of
random texts against tiktoken.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

_ASCII_WS = r" \t\n\r\v\f"
_PUNCT = r"!-/:-@\[-`{-~"  # every ASCII punctuation character
_PUNCT_NO_QUOTE = r"!-&(-/:-@\[-`{-~"  # the same without the apostrophe (0x27)

# Zero-width patterns: re.split(CUT, text) returns the parts between safe cuts.
COARSE_CUT = re.compile(rf"(?<=\S)(?=[{_ASCII_WS}])")
FINE_CUT = re.compile(
    rf"(?<=\S)(?=[{_ASCII_WS}])"
    rf"|(?<=[A-Za-z])(?=[0-9{_PUNCT}])"
    rf"|(?<=[0-9])(?=[A-Za-z{_PUNCT}])"
    rf"|(?<=[{_PUNCT_NO_QUOTE}])(?=[A-Za-z0-9])"
)

PIECE_CHARS = 16_384  # a long document is cut into pieces of about this many characters
MAX_PIECE_CHARS = 1 << 20  # no safe cut within this many characters: cut anyway (counted)


def find_cut(text: str, start: int, piece_chars: int,
             max_chars: int) -> tuple[int, bool] | None:
    """End of the piece that begins at ``start``: the first safe cut at least ``piece_chars``
    characters on, or a forced cut ``max_chars`` on. Returns (end, forced), or None: then the
    rest of ``text`` is the last piece if the document ends there, else more text is needed.

    The answer depends only on the characters from ``start`` to the cut, never on how the text
    arrived in chunks, so a resumed run that restarts at a piece's start cuts the same pieces.
    """
    if len(text) - start <= piece_chars:
        return None
    match = COARSE_CUT.search(text, start + piece_chars)
    if match is not None and match.start() - start <= max_chars:
        return match.start(), False
    if len(text) - start > max_chars:
        return start + max_chars, True
    return None


def iter_pieces(chunks: Iterable[str], piece_chars: int = PIECE_CHARS,
                max_chars: int = MAX_PIECE_CHARS) -> Iterator[tuple[str, bool, bool]]:
    """Cut one document, given as consecutive chunks of text, into pieces at safe cuts.

    Yields (piece, last, forced): ``last`` marks the document's final piece (a document always
    yields at least one, "" for an empty one); ``forced`` marks a piece that ended at a forced
    cut, where the ids may differ from tokenizing the whole document.
    Holds at most about one chunk plus ``max_chars`` characters.
    """
    buf, start = "", 0
    for chunk in chunks:
        buf = buf[start:] + chunk  # drop what was already yielded, once per chunk
        start = 0
        while (cut := find_cut(buf, start, piece_chars, max_chars)) is not None:
            end, forced = cut
            yield buf[start:end], False, forced
            start = end
    while (cut := find_cut(buf, start, piece_chars, max_chars)) is not None:
        end, forced = cut
        yield buf[start:end], False, forced
        start = end
    yield buf[start:], True, False
