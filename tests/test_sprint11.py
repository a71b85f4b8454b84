"""Sprint 11: the from-scratch byte-level BPE (bpe.py) and its CLI (train_tokenizer.py).

References, all independent of bpe.py: tiktoken's GPT-2 encoding and sprint 8's GPT2Tokenizer
(Hugging Face's Rust BPE) for encoding with GPT-2's merges; Hugging Face's BpeTrainer for
training; ``tokenizers.Tokenizer.from_file`` for the tokenizer.json we write; a brute-force
recount for the incremental pair counts. The texts are built here: source files of the
standard library, package descriptions (prose) from site-packages, and generated text in
many scripts with emojis, odd code points and whitespace runs.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import sysconfig
from collections import Counter
from importlib import import_module
from itertools import pairwise
from pathlib import Path

import pytest

bpe = import_module("sprints.11_tokenizer.results.bpe")
train_cli = import_module("sprints.11_tokenizer.results.train_tokenizer")
tok8 = import_module("sprints.08_gpt2_assembly.results.tokenizer")
offline_tiktoken_gpt2 = import_module("benchmarks.bench_prepare_data").offline_tiktoken_gpt2

EOT = bpe.EOT
CLI = "sprints.11_tokenizer.results.train_tokenizer"

WORDS = {
    "latin": "café naïve façade jalapeño Ångström œuvre Straße fjörður żółć",
    "greek": "αλφάβητο λόγος Ψυχή ωκεανός",
    "cyrillic": "привет мир Съешь же ещё этих мягких булок",
    "cjk": "日本語 東京 漢字 한국어 서울 中文 你好世界",
    "arabic": "مرحبا بالعالم العربية",
    "hebrew": "שלום עולם",
    "devanagari": "नमस्ते दुनिया हिन्दी",
    "thai": "สวัสดีชาวโลก",
    "emoji": "😀 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷 ❤️ 🤖",
    "marks": "e\u0301 a\u0308 n\u0303 \u200d \u200b \u2060 \ufeff \u00ad",
    "ascii": "it's we'll they'd I'M you've DON'T 3.14159 1,000,000 0x1F $42 #tag @user",
}
SPACES = [" ", "  ", "\n", "\n\n", "\t", "   \n", "\r\n", "\u00a0", "\u3000", "\u2028", "\x0b",
          " \x0c", "\u0085", "     "]


def generated_text(n_words: int, seed: int) -> str:
    rng = random.Random(seed)
    words = [w for group in WORDS.values() for w in group.split(" ")]
    out = []
    for _ in range(n_words):
        out.append(rng.choice(words))
        out.append(rng.choice(SPACES) if rng.random() < 0.25 else " ")
    return "".join(out)


def random_unicode(rng: random.Random, n: int) -> str:
    """Code points from everywhere, surrogates excepted (UTF-8 can't carry them)."""
    pools = [(0x00, 0x7F), (0x80, 0x7FF), (0x800, 0xD7FF), (0xE000, 0xFFFF),
             (0x10000, 0x10FFFF), (0x1F300, 0x1FAFF)]
    odd = ["\x00", "\uffff", "\U0010ffff", "\ufffd", "\u200d", "\u0301", "   ", "\n\n\n",
           "\t \t", "'s", "'LL", " <|", "|>", EOT]
    chars = []
    for _ in range(n):
        if rng.random() < 0.15:
            chars.append(rng.choice(odd))
        else:
            lo, hi = rng.choice(pools)
            chars.append(chr(rng.randint(lo, hi)))
    return "".join(chars)


def source_text(max_bytes: int) -> str:
    """Python source of the standard library (sorted, every 7th file): code, comments,
    docstrings."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    parts, size = [], 0
    for path in sorted(stdlib.glob("*.py"))[::7] + sorted(stdlib.glob("email/*.py")):
        text = path.read_text(encoding="utf-8", errors="ignore")
        parts.append(text)
        size += len(text.encode("utf-8"))
        if size >= max_bytes:
            break
    return "\n".join(parts)


def prose_text(max_bytes: int) -> str:
    """Package descriptions from site-packages' METADATA files (Markdown and reST prose)."""
    site = Path(sysconfig.get_paths()["purelib"])
    parts, size = [], 0
    for path in sorted(site.glob("*.dist-info/METADATA")):
        text = path.read_text(encoding="utf-8", errors="ignore")
        parts.append(text)
        size += len(text.encode("utf-8"))
        if size >= max_bytes:
            break
    return "\n".join(parts)


@pytest.fixture(scope="module")
def documents() -> list[str]:
    """About 2.5 MB in documents: code, prose, generated multilingual text (no special
    tokens inside: training tests use them as is)."""
    docs = [source_text(1_000_000), prose_text(1_000_000)]
    docs += [generated_text(20_000, seed) for seed in range(4)]
    return docs


@pytest.fixture(scope="module")
def gpt2() -> bpe.BPETokenizer:
    return bpe.BPETokenizer.from_gpt2_files()


# ----- 1. GPT-2's merges: the same ids as tiktoken and sprint 8 ------------------------------
def test_byte_map_is_gpt2s(gpt2):
    mapping = bpe.bytes_to_unicode()
    assert len(set(mapping.values())) == 256 and mapping[ord(" ")] == "Ġ"
    assert mapping[ord("\n")] == "Ċ" and mapping[ord("a")] == "a"
    from tokenizers import pre_tokenizers

    assert set(mapping.values()) == set(pre_tokenizers.ByteLevel.alphabet())
    # GPT-2's ids 0..255 are the single bytes in bytes_to_unicode's order (= code point order
    # of their characters, the order Hugging Face's trainer numbers its alphabet in).
    assert [gpt2.token_bytes[i] for i in range(256)] == [bytes([b]) for b in mapping]
    assert list(mapping.values()) == sorted(mapping.values())


def test_gpt2_ids_equal_tiktoken_and_sprint8(gpt2, documents):
    text = f" {EOT} ".join(documents) + EOT + "\n" + EOT
    enc = offline_tiktoken_gpt2()
    ours = gpt2.encode(text)
    assert gpt2.encode("Hello world") == [15496, 995]
    assert ours.count(50256) == len(documents) + 1
    assert ours == enc.encode(text, allowed_special="all")
    assert ours == tok8.get_tokenizer("gpt2").encode(text)
    plain = gpt2.encode(text, allowed_special="none")
    assert plain == enc.encode_ordinary(text) and 50256 not in plain
    assert gpt2.encode(text, allowed_special={EOT}) == ours
    assert gpt2.decode(ours) == text


def test_random_unicode_round_trips_and_matches_tiktoken(gpt2):
    rng = random.Random(0)
    enc = offline_tiktoken_gpt2()
    for _ in range(300):
        text = random_unicode(rng, rng.randint(0, 60))
        ids = gpt2.encode(text)
        assert gpt2.decode(ids) == text
        assert ids == enc.encode(text, allowed_special="all"), repr(text)
    # A prefix of a multi-byte character decodes to U+FFFD, as GPT-2's decoder does.
    assert gpt2.decode(gpt2.encode("😀")[:1]) == "\ufffd"


# ----- 2. training: the same merges as Hugging Face's BpeTrainer -----------------------------
def hf_train(texts: list[str], vocab_size: int, special_tokens=(EOT,)):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(special_tokens),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return tok


def merges_as_bytes(tokenizer_json: str) -> list[tuple[bytes, bytes]]:
    byte_of = {c: b for b, c in bpe.bytes_to_unicode().items()}
    spell = lambda s: bytes(byte_of[c] for c in s)  # noqa: E731
    return [(spell(a), spell(b)) for a, b in json.loads(tokenizer_json)["model"]["merges"]]


@pytest.fixture(scope="module")
def trained(documents):
    counts = bpe.count_chunks(documents, [EOT])
    trainer = bpe.BPETrainer(counts)
    trainer.train(2048 - 1, progress=False)
    return trainer, trainer.tokenizer([EOT])


def test_merges_equal_hugging_faces_bpe_trainer(documents, trained):
    trainer, ours = trained
    hf = hf_train(documents, 2048)
    theirs = merges_as_bytes(hf.to_str())
    mine = [(ours.token_bytes[a], ours.token_bytes[b]) for a, b in ours.merges]
    assert ours.vocab_size == hf.get_vocab_size() == 2048
    # Ties: both take the smallest pair of ids; Hugging Face numbers the 256 bytes in code
    # point order of their characters, which is GPT-2's byte order that bpe.py uses, and
    # numbers merged tokens in the order learned, as bpe.py does. So ties agree too, and every
    # merge is equal, not just the untied ones.
    counts = trainer.merge_counts
    ties = sum(a == b for a, b in pairwise(counts))
    assert ties > 500, "the text should make many merges decided by the tie rule"
    first_difference = next((i for i, (a, b) in enumerate(zip(mine, theirs, strict=False))
                             if a != b), None)
    assert first_difference is None and len(mine) == len(theirs), (
        f"merge {first_difference}: ours {mine[first_difference]} (count "
        f"{counts[first_difference]}), theirs {theirs[first_difference]}")
    # Bytes per token of the two vocabularies on the training text: equal (within 0.5%
    # would be the bar if tie-breaking differed).
    from tokenizers import Tokenizer

    ours_json = Tokenizer.from_str(json.dumps(ours.to_spec()))
    n_bytes = sum(len(d.encode("utf-8")) for d in documents)
    ours_bpt = n_bytes / sum(len(e.ids) for e in ours_json.encode_batch(documents))
    hf_bpt = n_bytes / sum(len(e.ids) for e in hf.encode_batch(documents))
    assert abs(ours_bpt / hf_bpt - 1) < 0.005
    assert trainer.n_bytes / trainer.n_tokens == pytest.approx(ours_bpt)


def test_all_tied_toy_corpus_matches_hugging_face():
    # tokenizers' own trainer test corpus: almost every pair count is 1 or 2.
    words = ("roses are are red voilets blue BERT is is big and so GPT-2 "
             "aaaa aaa aa a abab ba").split(" ")
    text = " ".join(words)
    hf = hf_train([text], 256 + 1 + 40)
    ours = bpe.BPETokenizer.train(text, 256 + 1 + 40, progress=False)
    assert [(ours.token_bytes[a], ours.token_bytes[b]) for a, b in ours.merges] == \
        merges_as_bytes(hf.to_str())


def test_the_notes_toy_example():
    trainer = bpe.BPETrainer({" hat": 5, " at": 2, " the": 3, " that": 4})
    trainer.train(256 + 5, progress=False)
    assert [trainer.token_bytes[256 + k] for k in range(5)] == [b"at", b"hat", b" t", b" hat",
                                                                 b" that"]
    assert trainer.merge_counts == [11, 9, 7, 5, 4]
    assert trainer.n_bytes == 58 and trainer.n_tokens == 22


# ----- 3. our tokenizer.json, read by Hugging Face -------------------------------------------
def test_saved_tokenizer_json_encodes_identically_in_hugging_face(trained, tmp_path):
    from tokenizers import Tokenizer

    _, ours = trained
    path = ours.save(tmp_path / "tokenizer.json")
    held_out = (generated_text(3000, seed=99) + EOT + source_text(50_000)[-20_000:]
                + f"{EOT}{EOT} x {EOT}\n" + random_unicode(random.Random(1), 2000))
    hf = Tokenizer.from_file(str(path))
    ids = ours.encode(held_out)
    assert ids.count(ours.eot_token_id) >= 4 and ours.eot_token_id == 2047
    assert hf.encode(held_out, add_special_tokens=False).ids == ids
    assert hf.decode(ids, skip_special_tokens=False) == ours.decode(ids) == held_out
    assert bpe.BPETokenizer.load(path).encode(held_out) == ids
    assert tok8.get_tokenizer(str(path)).encode(held_out) == ids  # sprint 8's reader
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left nothing behind


def test_loads_tokenizer_json_written_by_hugging_face(documents, tmp_path):
    # Hugging Face numbers differently (special tokens first): the encoder must not care.
    hf = hf_train(documents[2:3], 600)
    path = tmp_path / "hf.json"
    hf.save(str(path))
    ours = bpe.BPETokenizer.load(path)
    text = documents[3][:50_000] + EOT + "tail"
    assert ours.eot_token_id == 0
    assert ours.encode(text) == hf.encode(text, add_special_tokens=False).ids


def test_gpt2_saved_as_tokenizer_json_matches_tiktoken(gpt2, documents, tmp_path):
    from tokenizers import Tokenizer

    hf = Tokenizer.from_file(str(gpt2.save(tmp_path / "gpt2.json")))
    enc = offline_tiktoken_gpt2()
    for doc in documents:
        assert hf.encode(doc, add_special_tokens=False).ids == enc.encode_ordinary(doc)


def test_bad_files_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        bpe.BPETokenizer.load(tmp_path / "missing.json")
    (tmp_path / "wp.json").write_text(json.dumps({"model": {"type": "WordPiece"}}))
    with pytest.raises(ValueError, match="byte-level BPE"):
        bpe.BPETokenizer.load(tmp_path / "wp.json")
    with pytest.raises(ValueError, match="at least 258"):
        bpe.BPETokenizer.train("abc", 257, special_tokens=[EOT, "<|pad|>"])
    with pytest.raises(ValueError, match="outside"):
        bpe.BPETokenizer.from_merges([]).decode([257])


# ----- 4. the counts, the batch encoder and the CLI ------------------------------------------
def apply_merges(ids: list[int], merges: list[tuple[int, int]], first_new: int) -> list[int]:
    """Brute force: every merge in order, each left to right over the whole chunk."""
    for k, (a, b) in enumerate(merges):
        out, i = [], 0
        while i < len(ids):
            if i + 1 < len(ids) and ids[i] == a and ids[i + 1] == b:
                out.append(first_new + k)
                i += 2
            else:
                out.append(ids[i])
                i += 1
        ids = out
    return ids


def test_incremental_pair_counts_equal_a_recount_after_every_merge():
    text = (generated_text(1500, seed=5) + " aaaa aaaaaaa abab ababab ba-ba-ba 1111 0000000 "
            + source_text(8_000)[:8_000])
    counts = bpe.count_chunks(text)
    trainer = bpe.BPETrainer(counts)
    order = {b: i for i, b in enumerate(bpe.GPT2_BYTE_ORDER)}
    originals = [([order[b] for b in chunk.encode("utf-8")], n) for chunk, n in counts.items()]
    for step in range(300):
        if trainer.step() is None:
            break
        recount: Counter = Counter()
        for ids, n in originals:
            for p in pairwise(apply_merges(ids, trainer.merges, 256)):
                recount[p] += n
        assert {p: c for p, c in trainer.pair_counts.items() if c} == dict(recount), step
        # and the next pair chosen has the largest count, ties to the smallest pair
        if recount:
            top = max(recount.values())
            assert trainer.best_pair() == (min(p for p, c in recount.items() if c == top), top)
    assert step > 250


def test_encode_batch_and_counting_over_processes_equal_serial(gpt2, documents):
    texts = [d[i:i + 20_000] for d in documents[:3] for i in range(0, 100_000, 20_000)]
    texts = [t + EOT for t in texts if t]
    assert gpt2.encode_batch(texts, workers=2) == [gpt2.encode(t) for t in texts]
    assert gpt2.encode_batch(texts, workers=2, allowed_special="none") == \
        [gpt2.encode(t, allowed_special="none") for t in texts]
    assert bpe.count_chunks(texts, [EOT], workers=2) == bpe.count_chunks(texts, [EOT])


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = train_cli.main([*args, "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def merges_of(path: Path) -> list:
    return json.loads(path.read_text(encoding="utf-8"))["model"]["merges"]


def test_cli_trains_on_a_file_a_directory_and_jsonl(tmp_path, capsys):
    from tokenizers import Tokenizer

    docs = [generated_text(2000, seed) for seed in (11, 12, 13)]
    reference = bpe.BPETokenizer.train(docs, 400, progress=False).to_spec()

    one = tmp_path / "one.txt"
    one.write_text(docs[0], encoding="utf-8")
    code, out, _ = run_cli(["--input", str(one), "--vocab-size", "400", "--out",
                            str(tmp_path / "a.json")], capsys)
    assert code == 0 and "learned 143 merges" in out and "bytes per token" in out
    assert merges_of(tmp_path / "a.json") == \
        bpe.BPETokenizer.train(docs[0], 400, progress=False).to_spec()["model"]["merges"]

    folder = tmp_path / "docs"
    folder.mkdir()
    for k, doc in enumerate(docs):
        (folder / f"{k}.txt").write_text(doc, encoding="utf-8")
    code, out, _ = run_cli(["--input", str(folder), "--vocab-size", "400", "--out",
                            str(tmp_path / "b.json"), "--workers", "2"], capsys)
    assert code == 0 and merges_of(tmp_path / "b.json") == reference["model"]["merges"]

    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
    code, out, _ = run_cli(["--input", str(jsonl), "--vocab-size", "400", "--out",
                            str(tmp_path / "c.json"), "--backend", "tokenizers"], capsys)
    assert code == 0 and "--backend tokenizers" in out
    # The Rust backend writes the same file as the scratch one.
    assert (tmp_path / "c.json").read_text() == (tmp_path / "b.json").read_text()
    hf = Tokenizer.from_file(str(tmp_path / "c.json"))
    assert hf.token_to_id(EOT) == 399

    code, out, _ = run_cli(["--input", str(folder), "--vocab-size", "400", "--out",
                            str(tmp_path / "d.json"), "--max-bytes", "100"], capsys)
    assert code == 0  # the first piece only: all of the first file, none of the others
    assert merges_of(tmp_path / "d.json") == merges_of(tmp_path / "a.json")


def test_cli_errors_are_one_line_with_advice(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("hello world", encoding="utf-8")
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00 not utf-8")
    out = ["--out", str(tmp_path / "x.json")]
    cases = [
        (["--input", str(text), "--vocab-size", "256"], "at least 257"),
        (["--input", str(text), "--vocab-size", "257", "--special-tokens", "<a>", "<b>"],
         "at least 258"),
        (["--input", str(empty), "--vocab-size", "300"], "no text"),
        (["--input", str(empty), "--vocab-size", "300", "--backend", "tokenizers"], "no text"),
        (["--input", str(tmp_path / "missing.txt"), "--vocab-size", "300"], "does not exist"),
        (["--input", str(binary), "--vocab-size", "300"], "not UTF-8"),
    ]
    for args, message in cases:
        code, _, err = run_cli(args + out, capsys)
        assert code == 2 and message in err and err.count("\n") == 1, (args, err)
    assert not (tmp_path / "x.json").exists()
    code, _, err = run_cli(["--input", str(text), "--vocab-size", "300", "--out",
                            str(tmp_path / "no" / "x.json")], capsys)
    assert code == 2 and "does not exist; create it" in err
    # As a user meets it: a subprocess, no traceback, non-zero exit.
    result = subprocess.run([sys.executable, "-m", CLI, "--input", str(tmp_path / "nope"),
                             "--vocab-size", "300", "--out", str(tmp_path / "y.json")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: --input") and not (tmp_path / "y.json").exists()
