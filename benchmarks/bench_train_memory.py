"""Peak memory of train_gpt2 on a big prepared corpus against the same run on a small one.

    uv run python -m benchmarks.bench_train_memory --big DIR --small DIR

``--data-dir`` memory-maps the shards and reads only the windows of each batch, so the
corpus size should not show in the process's memory: the two runs (same model, same steps,
same ``--eval-tokens``, separate processes, one after the other) should peak within a few
percent of each other. The peak is the child's maximum resident set size (``ru_maxrss`` from
``os.wait4``), which counts the mapped file pages a process has touched, too.

Both directories come from ``prepare_data``; ``benchmarks/bench_prepare_data.py`` leaves a
300 MB corpus prepared in ``runs/bench_prepare_data/ours_1`` and a 3 MB one in
``runs/bench_prepare_data/ours_3mb``, the defaults here.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

MODULE = "sprints.09_train_gpt2.results.train_gpt2"
BENCH_DIR = Path("runs") / "bench_prepare_data"


def run(data_dir: Path, out: Path, extra: list[str]) -> dict:
    """One training run as a child process; call it from a process with no other children,
    so that RUSAGE_CHILDREN's peak is this run's."""
    cmd = [sys.executable, "-m", MODULE, "--data-dir", str(data_dir), "--out-dir", str(out),
           "--no-progress", *extra]
    t = time.time()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: kilobytes
    manifest = json.loads((data_dir / "manifest.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    return {"data_dir": str(data_dir), "corpus_tokens": manifest["total_tokens"],
            "shard_bytes": sum((data_dir / s["file"]).stat().st_size
                               for s in manifest["shards"]),
            "peak_rss_mb": peak_kb / 1024, "wall_s": time.time() - t,
            "final_step": summary["final_step"], "last_val_loss": summary["last_val_loss"]}


def main() -> None:
    p = argparse.ArgumentParser(description="Peak RSS of train_gpt2 --data-dir: big vs small "
                                            "prepared corpus.")
    p.add_argument("--big", type=Path, default=BENCH_DIR / "ours_1")
    p.add_argument("--small", type=Path, default=BENCH_DIR / "ours_3mb")
    p.add_argument("--max-steps", type=int, default=100)
    p.add_argument("--out-dir", type=Path, default=Path("runs") / "bench_train_memory")
    args = p.parse_args()
    for d in (args.big, args.small):
        if not (d / "manifest.json").is_file():
            raise SystemExit(f"{d} is not a prepared directory: run `uv run python -m "
                             "benchmarks.bench_prepare_data` first (it writes both defaults), "
                             "or pass --big/--small directories made by prepare_data")
    common = ["--n-layer", "2", "--n-head", "4", "--n-embd", "128", "--block-size", "256",
              "--batch-size", "8", "--max-steps", str(args.max_steps), "--eval-interval",
              str(args.max_steps // 2), "--eval-tokens", str(64 * 1024), "--sample-tokens",
              "0", "--dtype", "float32"]
    rows = []
    # The small corpus first and last: a page-cache or allocator warm-up effect would show as
    # a difference between the two small runs.
    for name, d in (("small", args.small), ("big", args.big), ("small again", args.small)):
        # Each run in a child of its own, so that ru_maxrss is that run's alone.
        code = ("import json, sys; from benchmarks.bench_train_memory import run; "
                "print(json.dumps(run(*map(__import__('pathlib').Path, sys.argv[1:3]), "
                "sys.argv[3:])))")
        out = subprocess.run([sys.executable, "-c", code, str(d), str(args.out_dir / name),
                              *common], capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(out.stderr[-2000:])
        row = {"name": name, **json.loads(out.stdout.strip().splitlines()[-1])}
        rows.append(row)
        print(f"{name:<12s} {row['corpus_tokens']:>13,} tokens ({row['shard_bytes'] / 1e6:7.1f} "
              f"MB of shards): peak RSS {row['peak_rss_mb']:7.1f} MB, {row['wall_s']:5.1f} s, "
              f"val loss {row['last_val_loss']:.3f}", flush=True)
    small = min(r["peak_rss_mb"] for r in rows if r["name"] != "big")
    big = rows[1]["peak_rss_mb"]
    print(f"big / small peak RSS: {big / small:.3f}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "memory.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
