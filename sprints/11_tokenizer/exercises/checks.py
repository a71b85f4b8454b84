"""Checks for the sprint 11 exercises. References: loops over the text written out chunk by
chunk (the table's counts expanded), ``str.replace`` (left to right, non-overlapping), the
note's toy walk-through, Hugging Face ``tokenizers``' BpeTrainer, and GPT-2's own merges
encoded by sprint 8's tokenizer (Hugging Face's Rust BPE)."""

from __future__ import annotations

import json
import random
from importlib import import_module

from sprints.check import expect_equal

# The note's toy corpus: 58 bytes, 14 chunks, 4 distinct.
TOY = {b" hat": 5, b" at": 2, b" the": 3, b" that": 4}
TOY_CHUNKS = {tuple(chunk): freq for chunk, freq in TOY.items()}
TOY_MERGES = [(97, 116), (104, 256), (32, 116), (32, 257), (258, 257)]

# Hugging Face tokenizers' own trainer test corpus: almost every count ties with another.
TIED_WORDS = ("roses are are red voilets blue BERT is is big and so GPT-2 aaaa aaa aa a abab "
              "ba").split(" ")

PROSE = (
    "The tokenizer reads bytes, not characters. It counts the pairs that stand next to each "
    "other, merges the most frequent pair into a new token, and counts again. After a few "
    "thousand merges the frequent words of the training text are single tokens, the rare "
    "ones are split into pieces, and nothing is ever unknown, because every byte is a token. "
    "Then the tokenizer encodes new text by replaying its merges, the earliest learned first."
)


def _expanded_text(chunks):
    """The table written out as the text it stands for: each chunk repeated as often as it
    occurs."""
    return [list(ids) for ids, freq in chunks.items() for _ in range(freq)]


def _count_by_scanning(chunks):
    counts = {}
    for ids in _expanded_text(chunks):
        for i in range(len(ids) - 1):
            counts[(ids[i], ids[i + 1])] = counts.get((ids[i], ids[i + 1]), 0) + 1
    return counts


def _expect_same_counts(call, got, expected):
    if not isinstance(got, dict):
        raise AssertionError(f"{call}: expected a dict {{pair: count}}, got {type(got).__name__}")
    got = {tuple(p): n for p, n in got.items()}
    for pair in sorted(set(got) | set(expected)):
        if got.get(pair, 0) != expected.get(pair, 0):
            raise AssertionError(f"{call}: pair {pair}: expected count "
                                 f"{expected.get(pair, 0)}, got {got.get(pair, 0)}")
    zeros = [p for p, n in got.items() if n == 0]
    if zeros:
        raise AssertionError(f"{call}: pairs that do not occur must be left out, got {zeros[:3]} "
                             "with count 0")


def _random_chunks(rng, n, alphabet, longest):
    return {tuple(rng.choice(alphabet) for _ in range(rng.randint(0, longest))): rng.randint(1, 6)
            for _ in range(n)}


def check_ex01_pair_counts(m):
    _expect_same_counts("pair_counts({(97, 116): 2, (116, 97, 116): 1})",
                        m.pair_counts({(97, 116): 2, (116, 97, 116): 1}),
                        {(97, 116): 3, (116, 97): 1})
    _expect_same_counts("pair_counts({(1, 1, 1): 2, (5,): 7, (): 1})  (a pair may overlap "
                        "itself when counting)", m.pair_counts({(1, 1, 1): 2, (5,): 7, (): 1}),
                        {(1, 1): 4})
    # The note's step 0 ("␣" is 32, a 97, e 101, h 104, t 116).
    _expect_same_counts("pair_counts(the note's toy table)", m.pair_counts(TOY_CHUNKS),
                        {(97, 116): 11, (104, 97): 9, (32, 116): 7, (116, 104): 7,
                         (32, 104): 5, (104, 101): 3, (32, 97): 2})
    rng = random.Random(0)
    for n in (3, 20):
        chunks = _random_chunks(rng, n, [1, 2, 3, 4], 9)
        _expect_same_counts(f"pair_counts({n} random chunks over ids 1-4)",
                            m.pair_counts(chunks), _count_by_scanning(chunks))
    # The from-scratch trainer's own first counts on GPT-2's chunks of some prose (its ids
    # are GPT-2's byte order; mapped back to byte values here).
    bpe = import_module("sprints.11_tokenizer.results.bpe")
    table = bpe.count_chunks(PROSE)
    trainer = bpe.BPETrainer(table)
    order = bpe.GPT2_BYTE_ORDER
    expected = {(order[a], order[b]): n for (a, b), n in trainer.pair_counts.items() if n}
    chunks = {tuple(chunk.encode("utf-8")): freq for chunk, freq in table.items()}
    _expect_same_counts("pair_counts(GPT-2's chunks of a paragraph, as bytes)",
                        m.pair_counts(chunks), expected)


def _merge_by_replace(ids, pair, new_id):
    """str.replace scans left to right and never overlaps: exactly a BPE merge."""
    text = "".join(map(chr, ids)).replace(chr(pair[0]) + chr(pair[1]), chr(new_id))
    return [ord(c) for c in text]


def check_ex02_merge_pair(m):
    cases = [([1, 1, 1], (1, 1), 9), ([1, 1, 1, 1], (1, 1), 9), ([1, 2, 1, 2, 1], (1, 2), 7),
             ([1, 2, 3], (2, 3), 8), ([3, 2, 1], (1, 2), 8), ([], (1, 2), 8), ([5], (5, 5), 8),
             ([104, 97, 116], (97, 116), 256)]
    rng = random.Random(1)
    for _ in range(30):
        ids = [rng.choice([1, 2, 3]) for _ in range(rng.randint(0, 14))]
        cases.append((ids, (rng.choice([1, 2, 3]), rng.choice([1, 2, 3])), 300))
    for ids, pair, new_id in cases:
        before = list(ids)
        call = f"merge_pair({ids}, {pair}, {new_id})"
        expect_equal(call, m.merge_pair(ids, pair, new_id), _merge_by_replace(ids, pair, new_id))
        expect_equal(f"the ids list after {call} (must be left as it was)", ids, before)


def _train_by_rewriting_the_text(chunks, num_merges, first_id=256):
    """The loop on the expanded text itself: recount everything, merge with str.replace."""
    text = _expanded_text(chunks)
    merges = []
    for step in range(num_merges):
        counts = {}
        for ids in text:
            for i in range(len(ids) - 1):
                counts[(ids[i], ids[i + 1])] = counts.get((ids[i], ids[i + 1]), 0) + 1
        if not counts:
            break
        top = max(counts.values())
        best = min(p for p, n in counts.items() if n == top)  # the smallest tied pair
        merges.append(best)
        text = [_merge_by_replace(ids, best, first_id + step) for ids in text]
    return merges


def _hf_trained(text, n_merges):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=256 + n_merges, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text], trainer)
    return tok


def check_ex03_train_bpe(m):
    expect_equal("train_bpe(the note's toy table, 5)", m.train_bpe(TOY_CHUNKS, 5), TOY_MERGES)
    expect_equal("train_bpe({(1, 1, 1): 1}, 3)  (stops when no pair is left)",
                 m.train_bpe({(1, 1, 1): 1}, 3), [(1, 1), (256, 1)])
    expect_equal("train_bpe({(3, 4): 2, (1, 2): 2}, 1)  (a tie: the smallest pair)",
                 m.train_bpe({(3, 4): 2, (1, 2): 2}, 1), [(1, 2)])
    tied = {tuple((" " + w).encode("utf-8")): TIED_WORDS.count(w) for w in set(TIED_WORDS)}
    expect_equal("train_bpe(a table where almost every count ties, 40)",
                 m.train_bpe(tied, 40), _train_by_rewriting_the_text(tied, 40))
    expect_equal("train_bpe(a table where almost every count ties, 40, first_id=1000)",
                 m.train_bpe(tied, 40, first_id=1000),
                 _train_by_rewriting_the_text(tied, 40, first_id=1000))

    # Hugging Face's BpeTrainer on a paragraph. Its ids 0..255 are the byte-level characters
    # sorted, and it numbers merged tokens in the order learned and breaks ties by the
    # smallest pair of its ids: feed train_bpe the same ids and every merge must agree.
    n_merges = 60
    hf = _hf_trained(PROSE, n_merges)
    vocab = hf.get_vocab()
    hf_merges = json.loads(hf.to_str())["model"]["merges"]
    assert len(hf_merges) == n_merges == len(vocab) - 256, "the check's text needs changing"
    chunks = {}
    for piece, _ in hf.pre_tokenizer.pre_tokenize_str(PROSE):
        ids = tuple(vocab[c] for c in piece)
        chunks[ids] = chunks.get(ids, 0) + 1
    got = m.train_bpe(chunks, n_merges)
    names = {i: t for t, i in vocab.items()}
    got_named = [[names.get(a, f"<id {a}>"), names.get(b, f"<id {b}>")] for a, b in got]
    for k, (mine, theirs) in enumerate(zip(got_named, hf_merges, strict=False)):
        if mine != theirs:
            raise AssertionError(f"train_bpe(a paragraph's chunks, {n_merges}): merge {k} is "
                                 f"{got[k]} = {mine}, Hugging Face's BpeTrainer made {theirs} "
                                 "('Ġ' is the space)")
    expect_equal(f"len(train_bpe(a paragraph's chunks, {n_merges}))", len(got), n_merges)


def check_ex04_encode_chunk(m):
    # The note's worked examples, with the toy merges.
    for word, expected in [(b" that", [260]), (b" heat", [32, 104, 101, 256]),
                           (b" tat", [258, 256]), (b" the", [258, 104, 101]), (b"", []),
                           (b"a", [97])]:
        expect_equal(f"encode_chunk({list(word)}, the note's 5 toy merges)",
                     m.encode_chunk(list(word), TOY_MERGES), expected)
    expect_equal("encode_chunk([1, 1, 1, 1, 1], [(1, 1), (256, 256)])",
                 m.encode_chunk([1, 1, 1, 1, 1], [(1, 1), (256, 256)]), [257, 1])
    # GPT-2's 50,000 merges (ids 0..255 are the bytes in GPT-2's order, merge r made 256 + r)
    # against GPT-2's tokenizer as Hugging Face's Rust BPE runs it.
    bpe = import_module("sprints.11_tokenizer.results.bpe")
    tok8 = import_module("sprints.08_gpt2_assembly.results.tokenizer")
    gpt2 = bpe.BPETokenizer.from_gpt2_files()
    reference = tok8.get_tokenizer("gpt2")
    byte_id = {b: i for i, b in enumerate(bpe.GPT2_BYTE_ORDER)}
    text = "Tokenization replays merges: unbelievably, internationalization splits 12345!"
    for chunk in bpe.pretokenize(text):
        ids = [byte_id[b] for b in chunk.encode("utf-8")]
        expect_equal(f"encode_chunk(the bytes of {chunk!r}, GPT-2's merges)",
                     m.encode_chunk(ids, gpt2.merges), reference.encode(chunk))


CHECKS = [check_ex01_pair_counts, check_ex02_merge_pair, check_ex03_train_bpe,
          check_ex04_encode_chunk]
