"""Text -> uint16 token ids for prepare_data, fast: GPT-2 (sprint 8's tokenizer behind a cache
of text segments), a tokenizer.json byte-level BPE (the same cache, when its pre-tokenizer is
GPT-2's regex) and the character tokenizer. Also the worker-process entry points.

Why a cache: the ``tokenizers`` library spends about 1 us per pre-token on bookkeeping (offsets,
alignments) even through ``encode_batch_fast``; measured on this repository's source files it
encodes about 3.4 M characters/s on one core, tiktoken about 12 to 18 M. Text between two safe
cuts (``safe_cuts``) tokenizes independently of its neighbours, and most such segments repeat
(" the", "\\n    return", " self"), so each distinct segment is tokenized once and its ids are
looked up afterwards. Two levels: coarse segments (cut at whitespace only, found fast by
``re.split``), and for a coarse segment not yet seen, its fine segments (also cut between
ASCII letters, digits and punctuation), of which only the unseen ones reach ``tokenizers``.
Lookups, splits and joins all run in C (``re.split``, ``set.difference``, ``bytes.join``), so
Python touches each distinct segment, not each token.

The ids are unchanged by the cache (the tests compare against tiktoken). Text is encoded as it
is: a literal "<|endoftext|>" inside a document is seven ordinary tokens, as tiktoken's
``encode_ordinary`` (nanoGPT) makes it, and only prepare_data's own end-of-text marks
documents.
"""

from __future__ import annotations

import os
import re
from importlib import import_module

import numpy as np

from .safe_cuts import COARSE_CUT, FINE_CUT

_tokenizer_lib = import_module("sprints.08_gpt2_assembly.results.tokenizer")

ID_DTYPE = np.dtype("<u2")  # uint16, little-endian on every machine (the shard format)
# FINE_CUT.split as one consuming findall (1.6x faster than the zero-width lookarounds): a part
# is a run of steps each allowed to continue (whitespace; a letter run followed by a non-ASCII
# character; ...) and a final run; NUL belongs to no class, so it is always a part of its own,
# which lets _fill tokenize many segments joined by NUL in one pass. The tests check that this
# equals FINE_CUT.split on every segment.
_P = r"!-&(-/:-@\[-`{-~"  # ASCII punctuation without the apostrophe
_NQ = r"(?:'|[^\s!-~\x00])"  # the apostrophe, or a non-ASCII non-space character
FINE_PARTS_NUL = re.compile(
    rf"(?:\s++|{_NQ}++(?![\t-\r \x00])|[A-Za-z]++(?=[^\t-\r !-~\x00])"
    rf"|[0-9]++(?=[^\t-\r !-~\x00])|[{_P}]++(?=[^\t-\r A-Za-z0-9\x00]))*"
    rf"(?:\s++|[A-Za-z]++|[0-9]++|[{_P}]++|{_NQ}++)|\x00")
_SEPARATOR, _MARKER = "\x00", b"\xff\xff"
COARSE_CACHE_SIZE = 300_000  # distinct segments kept (typically about 50 MB per worker when
FINE_CACHE_SIZE = 300_000  # full, at most about 80 MB each, segments being <= 64 characters)
MAX_CACHED_CHARS = 64


# The cache splits bytes at 0xFFFF: exact only while no id has high byte 0xFF (ids < 0xFF00).
MAX_CACHED_VOCAB = 0xFF00


class CachedGPT2Encoder:
    """GPT-2 ids of a text as uint16 bytes, through sprint 8's GPT2Tokenizer and a segment
    cache. ``encode(text)`` equals tiktoken's ``encode_ordinary(text)``.

    ``tokenizer``: another sprint 8 byte-level BPE (``TokenizerJSON``) whose pre-tokenizer is
    GPT-2's regex (``segment_cache_applies``): the safe cuts hold for it too, since BPE never
    merges across the regex's matches, whatever its merges are.
    """

    name = "gpt2"

    def __init__(self, coarse_size: int = COARSE_CACHE_SIZE,
                 fine_size: int = FINE_CACHE_SIZE, tokenizer=None) -> None:
        # A fresh sprint 8 tokenizer of our own, so its backend (the tokenizers.Tokenizer) may
        # be changed: encode_special_tokens=True reads a literal "<|endoftext|>" as text,
        # like tiktoken's encode_ordinary.
        gpt2 = tokenizer if tokenizer is not None else _tokenizer_lib.get_tokenizer("gpt2")
        if gpt2.vocab_size > MAX_CACHED_VOCAB:
            raise ValueError(f"the segment cache needs ids below {MAX_CACHED_VOCAB:#x}; this "
                             f"tokenizer has {gpt2.vocab_size}: use PlainBPEEncoder")
        self.name = gpt2.name
        self._rust = gpt2.backend
        self._rust.encode_special_tokens = True
        self.vocab_size = gpt2.vocab_size
        self.eot_token_id = gpt2.eot_token_id
        self._coarse: dict[str, bytes] = {}
        self._fine: dict[str, bytes] = {_SEPARATOR: _MARKER}
        self._coarse_size, self._fine_size = coarse_size, fine_size

    def _tokenize(self, segments: list[str]) -> list[bytes]:
        encodings = self._rust.encode_batch_fast(segments, add_special_tokens=False)
        return [np.asarray(e.ids, dtype=ID_DTYPE).tobytes() for e in encodings]

    def _fill(self, missing: set[str]) -> list[str]:
        """Put the ids of each coarse segment in ``missing`` into the coarse cache; returns
        the long ones, to be dropped again once used (long segments rarely repeat and would
        make the cache's memory depend on the text)."""
        missing = list(missing)
        # One regex pass and one join for all of them: the segments joined by NUL, which
        # FINE_PARTS_NUL keeps apart; NUL's ids are the marker 0xFFFF, which no token id
        # (< MAX_CACHED_VOCAB: GPT-2's high bytes are <= 0xC4) and no pair of neighbouring
        # ids can form, so splitting the bytes at it is exact.
        joined = _SEPARATOR.join(missing)
        if joined.count(_SEPARATOR) != len(missing) - 1:  # a NUL in the text itself
            for segment in missing:
                parts = FINE_CUT.split(segment)
                self._fine_ids(set(parts))
                self._coarse[segment] = b"".join(map(self._fine.__getitem__, parts))
                self._drop_long(self._fine, set(parts))
        else:
            parts = FINE_PARTS_NUL.findall(joined)
            needed = set(parts)
            self._fine_ids(needed)
            ids = b"".join(map(self._fine.__getitem__, parts)).split(_MARKER)
            self._coarse.update(zip(missing, ids, strict=True))
            self._drop_long(self._fine, needed)
        if max(map(len, missing)) <= MAX_CACHED_CHARS:
            return []
        return [segment for segment in missing if len(segment) > MAX_CACHED_CHARS]

    @staticmethod
    def _drop_long(cache: dict, keys) -> None:
        if max(map(len, keys), default=0) > MAX_CACHED_CHARS:
            for key in keys:
                if len(key) > MAX_CACHED_CHARS:
                    cache.pop(key, None)

    def _fine_ids(self, needed: set[str]) -> None:
        """Make sure every fine segment in ``needed`` is in the fine cache."""
        new = needed.difference(self._fine)
        if new and len(self._fine) + len(new) > self._fine_size:
            self._fine.clear()  # a full cache starts again: memory stays bounded
            self._fine[_SEPARATOR] = _MARKER
            new = needed.difference(self._fine)
        if new:
            new = list(new)
            self._fine.update(zip(new, self._tokenize(new), strict=True))

    def encode(self, text: str) -> bytes:
        segments = COARSE_CUT.split(text)
        needed = set(segments)
        missing = needed.difference(self._coarse)
        if missing and len(self._coarse) + len(missing) > self._coarse_size:
            self._coarse.clear()
            missing = needed
        used_once = self._fill(missing) if missing else []
        ids = b"".join(map(self._coarse.__getitem__, segments))
        for segment in used_once:
            del self._coarse[segment]
        return ids


class CharEncoder:
    """Sprint 8's character tokenizer with a fixed vocabulary, returning uint16 bytes."""

    name = "char"
    eot_token_id = None  # a character vocabulary has no end-of-text symbol

    def __init__(self, chars: str) -> None:
        self._tok = _tokenizer_lib.CharTokenizer(list(chars))
        self.vocab_size = self._tok.vocab_size

    def encode(self, text: str) -> bytes:
        return np.asarray(self._tok.encode(text), dtype=ID_DTYPE).tobytes()


class PlainBPEEncoder:
    """A tokenizer.json BPE without the cache (for pre-tokenizers other than GPT-2's regex):
    each text goes to ``tokenizers`` whole; special tokens in it are read as text."""

    name = "bpe"

    def __init__(self, tokenizer) -> None:
        self._rust = tokenizer.backend
        self._rust.encode_special_tokens = True
        self.vocab_size = tokenizer.vocab_size
        self.eot_token_id = tokenizer.eot_token_id

    def encode(self, text: str) -> bytes:
        ids = self._rust.encode(text, add_special_tokens=False).ids
        return np.asarray(ids, dtype=ID_DTYPE).tobytes()


def segment_cache_applies(tokenizer) -> bool:
    """Whether a tokenizer.json BPE tokenizes every safe-cut segment independently, as GPT-2:
    no normalizer (NFC and the like can join characters across a cut), a ByteLevel
    pre-tokenizer with GPT-2's regex and no prefix space (one would be added to every
    segment), no BPE dropout (random merges), only special added tokens (ordinary added
    tokens are matched before the regex, possibly across a cut), ids below the marker."""
    spec = tokenizer.spec
    pre = spec.get("pre_tokenizer") or {}
    if pre.get("type") == "Sequence" and len(pre.get("pretokenizers", [])) == 1:
        pre = pre["pretokenizers"][0]
    return (spec.get("normalizer") is None and pre.get("type") == "ByteLevel"
            and pre.get("use_regex", True) and not pre.get("add_prefix_space", False)
            and (spec.get("model") or {}).get("dropout") is None
            and all(t.get("special") for t in spec.get("added_tokens") or [])
            and tokenizer.vocab_size <= MAX_CACHED_VOCAB)


def make_encoder(spec: dict) -> CachedGPT2Encoder | PlainBPEEncoder | CharEncoder:
    """``{"type": "gpt2"}``, ``{"type": "char", "chars": "..."}`` or
    ``{"type": "bpe", "json": "..."}`` (the manifest's form)."""
    if spec["type"] == "gpt2":
        return CachedGPT2Encoder()
    if spec["type"] == "char":
        return CharEncoder(spec["chars"])
    if spec["type"] == "bpe":
        tokenizer = _tokenizer_lib.TokenizerJSON.from_dict(spec)
        if segment_cache_applies(tokenizer):
            return CachedGPT2Encoder(tokenizer=tokenizer)
        return PlainBPEEncoder(tokenizer)
    raise ValueError(f"unknown tokenizer type {spec['type']!r}; expected 'gpt2', 'char' or "
                     "'bpe'")


def limit_threads() -> None:
    """One core per process: tokenizers' Rust thread pool would otherwise start one thread per
    core in every worker (workers x cores threads on workers cores)."""
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["RAYON_NUM_THREADS"] = "1"


_worker_encoder = None


def init_worker(spec: dict) -> None:
    """Pool initializer: build this process's encoder (and its cache) once."""
    global _worker_encoder
    limit_threads()
    _worker_encoder = make_encoder(spec)


def encode_pieces(texts: list[str], lasts: list[bool],
                  encoder=None) -> tuple[bytes, np.ndarray]:
    """Ids of consecutive pieces, each followed by end-of-text when it ends a document.

    Returns (all ids as uint16 bytes, tokens per piece). Runs in a worker (``encoder`` None:
    the one ``init_worker`` built) or in the main process (``--workers 1``).
    """
    encoder = encoder or _worker_encoder
    eot = (b"" if encoder.eot_token_id is None
           else np.asarray([encoder.eot_token_id], dtype=ID_DTYPE).tobytes())
    out, counts = [], np.empty(len(texts), dtype=np.int64)
    for i, (text, last) in enumerate(zip(texts, lasts, strict=True)):
        ids = encoder.encode(text)
        if last:
            ids += eot
        out.append(ids)
        counts[i] = len(ids) // ID_DTYPE.itemsize
    return b"".join(out), counts
