"""Sprint 11's tokenizer, side by side: training, encoding, and what a vocabulary buys a model.

    uv run python -m benchmarks.bench_tokenizer                     # all three parts, 100 MB
    uv run python -m benchmarks.bench_tokenizer --min-mb 10 --vocab-sizes 1024 --parts train
    uv run python -m benchmarks.bench_tokenizer --parts shakespeare  # the bits-per-byte table

The corpus is the one bench_prepare_data builds: the UTF-8 source and documentation files of
this environment's site-packages (code, prose, some non-ASCII), copied once under runs/ as a
directory of files, one document each.

Parts:
- ``train``: for each vocabulary size, the training time and the peak RSS (the process and its
  workers) of ``train_tokenizer --backend scratch`` (our from-scratch trainer),
  ``train_tokenizer --backend tokenizers``, and the peer, ``tokenizers``' own BpeTrainer fed
  the files directly as its documentation shows (ByteLevel pre-tokenizer, the 256 byte
  characters as initial alphabet), each in its own process. Also the bytes per token that our
  vocabulary and the peer's give on the first 10 MB of the corpus.
- ``encode``: encoding throughput on the whole corpus with GPT-2's own merges: our encoder
  (``BPETokenizer.encode_batch``), tiktoken (``encode_ordinary_batch``) and ``tokenizers``
  (``encode_batch_fast``), with 1 and 2 processes/threads, each in its own process; the ids of
  all of them must agree.
- ``shakespeare``: the cpu-speedrun preset of train_gpt2 (same steps, batch and context in
  tokens) on Tiny Shakespeare with a character vocabulary and with BPE vocabularies trained
  (scratch) on its training split; validation losses compared in bits per byte over the same
  validation text, with a PNG of bits per byte against vocabulary size.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from importlib import import_module
from pathlib import Path

import numpy as np

_prep_bench = import_module("benchmarks.bench_prepare_data")
_devices = import_module("sprints.01_setup_and_basics.results.devices")
_arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")

MB = 1e6
EOT = "<|endoftext|>"
TRAIN_CLI = "sprints.11_tokenizer.results.train_tokenizer"


# ----- jobs, each run in its own process ---------------------------------------------------------
def read_documents(corpus_docs: Path, max_bytes: float | None = None) -> list[str]:
    corpus_readers = import_module("sprints.09_train_gpt2.results.corpus_readers")
    docs, total = [], 0
    for path in corpus_readers.FileCorpus(corpus_docs).files:
        if max_bytes is not None and total >= max_bytes:
            break
        text = path.read_text(encoding="utf-8")
        docs.append(text)
        total += len(text.encode("utf-8"))
    return docs


def peer_train_job(corpus_docs: Path, vocab_size: int, out: Path) -> None:
    """tokenizers' BpeTrainer as its documentation drives it: ``Tokenizer.train(files)``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    corpus_readers = import_module("sprints.09_train_gpt2.results.corpus_readers")
    files = [str(p) for p in corpus_readers.FileCorpus(corpus_docs).files]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    t0 = time.perf_counter()
    tok.train(files, trainer)
    seconds = time.perf_counter() - t0
    tok.save(str(out))
    print(json.dumps({"train_s": seconds, "vocab_size": tok.get_vocab_size()}))


def encode_job(engine: str, corpus_docs: Path, workers: int) -> None:
    """Time one engine encoding every document with GPT-2's merges; print MB/s and an id hash."""
    tokenizer_lib = import_module("sprints.08_gpt2_assembly.results.tokenizer")
    docs = read_documents(corpus_docs)
    n_bytes = sum(len(d.encode("utf-8")) for d in docs)
    if engine == "ours":
        bpe = import_module("sprints.11_tokenizer.results.bpe")
        files = tokenizer_lib.find_vocab_files(tokenizer_lib.bundled_gpt2_dir())
        tok = bpe.BPETokenizer.from_gpt2_files(*files)
        t0 = time.perf_counter()
        ids = tok.encode_batch(docs, workers=workers, allowed_special="none")
    elif engine == "tiktoken":
        enc = _prep_bench.offline_tiktoken_gpt2()
        t0 = time.perf_counter()
        ids = enc.encode_ordinary_batch(docs, num_threads=workers)
    elif engine == "tokenizers":
        # RAYON_NUM_THREADS was set by the parent before this process imported tokenizers.
        backend = tokenizer_lib.get_tokenizer("gpt2").backend
        backend.encode_special_tokens = True  # a literal <|endoftext|> is text, as above
        t0 = time.perf_counter()
        ids = [e.ids for e in backend.encode_batch_fast(docs, add_special_tokens=False)]
    else:
        raise SystemExit(f"unknown engine {engine!r}")
    seconds = time.perf_counter() - t0
    digest = hashlib.sha256()
    n_tokens = 0
    for doc_ids in ids:
        digest.update(np.asarray(doc_ids, dtype="<u2").tobytes())
        n_tokens += len(doc_ids)
    print(json.dumps({"seconds": seconds, "mb_per_s": n_bytes / MB / seconds,
                      "tokens": n_tokens, "bytes": n_bytes, "ids_sha": digest.hexdigest()}))


# ----- the parent ------------------------------------------------------------------------------
def run_job(args: list[str], env: dict | None = None) -> dict:
    measured = _prep_bench.run_measured(args, env=env)
    return {**measured, **_prep_bench.last_json_line(measured["output"])}


def bytes_per_token(tokenizer_json: Path, docs: list[str]) -> float:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    n_tokens = sum(len(e.ids) for e in tok.encode_batch_fast(docs, add_special_tokens=False))
    return sum(len(d.encode("utf-8")) for d in docs) / n_tokens


def train_part(corpus: Path, vocab_sizes: list[int], workers: int, out: Path) -> list[dict]:
    sample = read_documents(corpus / "docs", max_bytes=10 * MB)
    rows = []
    for vocab in vocab_sizes:
        row = {"vocab_size": vocab}
        for name, backend in (("scratch", "scratch"), ("backend", "tokenizers")):
            path = out / f"{name}-{vocab}.json"
            result = _prep_bench.run_measured([sys.executable, "-m", TRAIN_CLI, "--input",
                                               str(corpus / "docs"),
                              "--vocab-size", str(vocab), "--out", str(path),
                              "--workers", str(workers), "--backend", backend])
            row[f"{name}_s"], row[f"{name}_peak_mb"] = result["wall_s"], result["peak_rss_mb"]
            row[f"{name}_bytes_per_token"] = bytes_per_token(path, sample)
            print(f"  {name:8s} vocab {vocab:6,}: {result['wall_s']:7.1f} s, "
                  f"peak {result['peak_rss_mb']:6.0f} MB", flush=True)
        path = out / f"peer-{vocab}.json"
        result = run_job([sys.executable, "-m", "benchmarks.bench_tokenizer", "--job",
                          "peer-train", "--corpus-docs", str(corpus / "docs"),
                          "--vocab-size", str(vocab), "--job-out", str(path)])
        row["peer_s"], row["peer_peak_mb"] = result["wall_s"], result["peak_rss_mb"]
        row["peer_bytes_per_token"] = bytes_per_token(path, sample)
        print(f"  {'peer':8s} vocab {vocab:6,}: {result['wall_s']:7.1f} s, "
              f"peak {result['peak_rss_mb']:6.0f} MB", flush=True)
        rows.append(row)
    print("\nvocab   | scratch s (x peer) | backend s (x peer) | peer s | peak MB scratch/"
          "backend/peer | bytes/token scratch/peer")
    for r in rows:
        print(f"{r['vocab_size']:7,} | {r['scratch_s']:7.1f} ({r['scratch_s'] / r['peer_s']:5.1f}x)"
              f" | {r['backend_s']:7.1f} ({r['backend_s'] / r['peer_s']:4.2f}x) | "
              f"{r['peer_s']:6.1f} | {r['scratch_peak_mb']:5.0f} / {r['backend_peak_mb']:5.0f} / "
              f"{r['peer_peak_mb']:5.0f} | {r['scratch_bytes_per_token']:.3f} / "
              f"{r['peer_bytes_per_token']:.3f} "
              f"({100 * (r['scratch_bytes_per_token'] / r['peer_bytes_per_token'] - 1):+.2f}%)")
    return rows


def encode_part(corpus: Path, workers_list: list[int]) -> list[dict]:
    rows = []
    for workers in workers_list:
        for engine in ("ours", "tiktoken", "tokenizers"):
            env = {"RAYON_NUM_THREADS": str(workers), "TOKENIZERS_PARALLELISM": "true"}
            result = run_job([sys.executable, "-m", "benchmarks.bench_tokenizer", "--job",
                              "encode", "--engine", engine, "--corpus-docs",
                              str(corpus / "docs"), "--workers", str(workers)], env=env)
            rows.append({"engine": engine, "workers": workers, **{
                k: result[k] for k in ("seconds", "mb_per_s", "tokens", "ids_sha",
                                       "peak_rss_mb")}})
            print(f"  {engine:10s} x{workers}: {result['mb_per_s']:6.2f} MB/s "
                  f"({result['seconds']:.1f} s, {result['tokens']:,} tokens, "
                  f"peak {result['peak_rss_mb']:.0f} MB)", flush=True)
    same = len({r["ids_sha"] for r in rows}) == 1
    print(f"\nids identical across engines and process counts: {same}")
    for workers in workers_list:
        by = {r["engine"]: r for r in rows if r["workers"] == workers}
        print(f"  x{workers}: ours / tiktoken = "
              f"{by['ours']['mb_per_s'] / by['tiktoken']['mb_per_s']:.2f}, ours / tokenizers = "
              f"{by['ours']['mb_per_s'] / by['tokenizers']['mb_per_s']:.2f}")
    return rows


def shakespeare_part(data_file: Path, vocab_sizes: list[int], out: Path) -> list[dict]:
    data = import_module("sprints.09_train_gpt2.results.data")
    text = data.read_text(data_file)
    train_text, val_text = data.split_text(text, 0.1)  # train_gpt2's split, by characters
    train_file = out / "shakespeare-train.txt"
    train_file.write_text(train_text, encoding="utf-8")
    val_bytes = len(val_text.encode("utf-8"))
    rows = []
    for vocab in [None, *vocab_sizes]:
        name = "char" if vocab is None else f"bpe-{vocab}"
        extra = []
        if vocab is None:
            n_val_tokens, vocab_used = len(val_text), len(set(text))
        else:
            tok_path = out / f"shakespeare-{vocab}.json"
            _prep_bench.run_measured([sys.executable, "-m", TRAIN_CLI, "--input", str(train_file),
                     "--vocab-size", str(vocab), "--out", str(tok_path)])
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(tok_path))
            n_val_tokens = len(tok.encode(val_text, add_special_tokens=False).ids)
            vocab_used = tok.get_vocab_size()
            extra = ["--tokenizer", str(tok_path)]
        run_dir = out / f"speedrun-{name}"
        result = _prep_bench.run_measured([
                          sys.executable, "-m", "sprints.09_train_gpt2.results.train_gpt2",
                          "--preset", "cpu-speedrun", "--data-file", str(data_file),
                          "--out-dir", str(run_dir), "--cache-dir", str(out / "cache"), *extra])
        summary = json.loads((run_dir / "summary.json").read_text())
        loss = summary["best_val_loss"]  # nats per validation token
        bits_per_byte = loss * n_val_tokens / (math.log(2) * val_bytes)
        rows.append({"tokenizer": name, "vocab_size": vocab_used, "val_loss": loss,
                     "val_tokens": n_val_tokens, "bytes_per_token": val_bytes / n_val_tokens,
                     "bits_per_byte": bits_per_byte, "train_s": summary["elapsed_s"],
                     "wall_s": result["wall_s"]})
        print(f"  {name:9s}: vocab {vocab_used:5,}, val loss {loss:.4f} nats/token, "
              f"{val_bytes / n_val_tokens:.2f} bytes/token, {bits_per_byte:.4f} bits/byte, "
              f"training {summary['elapsed_s']:.1f} s", flush=True)
    plot_bits_per_byte(rows, out / "bits_per_byte_vs_vocab.png")
    return rows


def plot_bits_per_byte(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["vocab_size"] for r in rows], [r["bits_per_byte"] for r in rows], "o-")
    for r in rows:
        ax.annotate(r["tokenizer"], (r["vocab_size"], r["bits_per_byte"]),
                    textcoords="offset points", xytext=(4, 6), fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("vocabulary size (log scale)")
    ax.set_ylabel("validation bits per byte")
    ax.set_title("Tiny Shakespeare, cpu-speedrun budget (220 steps x 64 x 64 tokens)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"  plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="train,encode,shakespeare",
                        help="comma-separated: train, encode, shakespeare")
    parser.add_argument("--min-mb", type=_arg_types.positive_float, default=100.0,
                        help="size of the corpus for the train and encode parts")
    parser.add_argument("--vocab-sizes", default="1024,8192,32768",
                        help="vocabularies to train in the train part")
    parser.add_argument("--bpe-vocab-sizes", default="512,1024,2048",
                        help="BPE vocabularies of the shakespeare part (a char model too)")
    parser.add_argument("--workers", type=_arg_types.positive_int, default=2,
                        help="train_tokenizer's --workers")
    parser.add_argument("--encode-workers", default="1,2",
                        help="process/thread counts of the encode part")
    parser.add_argument("--data-file", type=Path, default=Path("data/tinyshakespeare/input.txt"),
                        help="Tiny Shakespeare's input.txt for the shakespeare part "
                             "(train_gpt2 downloads it there)")
    parser.add_argument("--out-dir", type=Path, default=Path("runs/bench_tokenizer"))
    # internal: one measured job in a fresh process
    parser.add_argument("--job", choices=["peer-train", "encode"], help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--corpus-docs", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--vocab-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--job-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job == "peer-train":
        return peer_train_job(args.corpus_docs, args.vocab_size, args.job_out)
    if args.job == "encode":
        return encode_job(args.engine, args.corpus_docs, args.workers)

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    parts = set(args.parts.split(","))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {_devices.describe_cpu()}", flush=True)
    report: dict = {"machine": _devices.describe_cpu()}
    if parts & {"train", "encode"}:
        corpus = args.out_dir.parent / "bench_corpus"
        info = _prep_bench.build_corpus(corpus, args.min_mb * MB)
        print(f"corpus: {info['bytes'] / MB:.1f} MB in {info['files']:,} files", flush=True)
        report["corpus"] = info
    if "train" in parts:
        print("\n== training a vocabulary ==", flush=True)
        sizes = [int(v) for v in args.vocab_sizes.split(",")]
        report["train"] = train_part(corpus, sizes, args.workers, args.out_dir)
    if "encode" in parts:
        print("\n== encoding with GPT-2's merges ==", flush=True)
        report["encode"] = encode_part(corpus, [int(w) for w in args.encode_workers.split(",")])
    if "shakespeare" in parts:
        if not args.data_file.is_file():
            raise SystemExit(f"{args.data_file} not found: run train_gpt2 once without "
                             "--data-file to download it, or pass --data-file")
        print("\n== Tiny Shakespeare: char vs BPE, same budget ==", flush=True)
        sizes = [int(v) for v in args.bpe_vocab_sizes.split(",")]
        report["shakespeare"] = shakespeare_part(args.data_file, sizes, args.out_dir)
    (args.out_dir / "report.json").write_text(json.dumps(report, indent=2))
    print(f"\nreport: {args.out_dir / 'report.json'}")


if __name__ == "__main__":
    main()
