"""CPU speedrun: time to validation loss 1.88 on character-level Tiny Shakespeare, against
nanoGPT's CPU recipe run in the same invocation.

    uv run python -m benchmarks.bench_train_speedrun --data-file data/tinyshakespeare/input.txt

Runs train_gpt2 as separate processes, one after the other (the reference between the two
halves of the speedrun runs), and times each from the moment the process is launched:

- ``--preset cpu-speedrun --target-val-loss 1.88`` (ours: stops at the evaluation that
  reaches the target);
- ``--preset nanogpt-cpu``: nanoGPT's recommended CPU recipe for shakespeare_char (4 layers,
  4 heads, width 128, block 64, batch 12, 2,000 iterations, AdamW lr 1e-3 -> 1e-4, warmup 100,
  beta2 0.99, no dropout, no biases, float32) in the same script, evaluated once at the end.

Both validation losses are over the whole validation split. Prints the CPU, each run and the
ratio (the recipe's wall time / our time to the target); writes ``speedrun.json`` and a
loss-versus-wall-clock picture ``speedrun.png`` to ``--out-dir``.

``--isa avx2`` runs both processes as on a CPU without AVX-512 (PyTorch's kernels, oneDNN
and MKL capped at AVX2 through ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA and
MKL_ENABLE_INSTRUCTIONS), which also makes ``--dtype auto`` choose float32 as it would there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MODULE = "sprints.09_train_gpt2.results.train_gpt2"
# What a CPU without AVX-512 runs: each library's own switch, capped at AVX2.
AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def run(name: str, preset: str, data_file: Path, out: Path, extra: list[str],
        env: dict) -> dict:
    cmd = [sys.executable, "-m", MODULE, "--preset", preset, "--data-file", str(data_file),
           "--tokenizer", "char", "--out-dir", str(out), "--no-progress", *extra]
    t = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.time() - t
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    log = [json.loads(ln) for ln in (out / "train_log.jsonl").read_text().splitlines() if ln]
    row = {"name": name, "command": " ".join(cmd[1:]), "wall_s": wall, **summary, "log": log}
    print(f"{name:<28s} wall {wall:6.1f} s   final step {summary['final_step']:5d}   "
          f"best val loss {summary['best_val_loss']:.4f}   time to target "
          f"{summary['time_to_target_s']}", flush=True)
    return row


def plot(rows: list[dict], target: float, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row, color in zip(rows, ["tab:red", "tab:blue"], strict=False):
        steps = [r for r in row["log"] if "loss" in r]
        vals = [r for r in row["log"] if "val_loss" in r]
        ax.plot([r["time_s"] for r in steps], [r["loss"] for r in steps], color=color,
                alpha=0.35, lw=0.8, label=f"{row['name']}: train loss (batch)")
        ax.plot([r["time_s"] for r in vals], [r["val_loss"] for r in vals], "o-", color=color,
                label=f"{row['name']}: val loss (whole split)")
    ax.axhline(target, color="k", ls="--", lw=0.8, label=f"target {target}")
    ax.set_ylim(1.4, 3.0)
    ax.set_xlabel("seconds since process start")
    ax.set_ylabel("cross-entropy loss (nats/char)")
    ax.set_title("Tiny Shakespeare, char-level, 2-core CPU")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description="Time to val loss 1.88: cpu-speedrun vs nanoGPT.")
    p.add_argument("--data-file", type=Path, default=Path("data/tinyshakespeare/input.txt"),
                   help="Tiny Shakespeare input.txt (train_gpt2 downloads it there)")
    p.add_argument("--target", type=float, default=1.88)
    p.add_argument("--skip-reference", action="store_true", help="only the speedrun preset")
    p.add_argument("--repeats", type=int, default=1, help="speedrun runs (reference runs once)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1337],
                   help="--seed of the speedrun runs (each seed runs --repeats times)")
    p.add_argument("--isa", choices=["native", "avx2"], default="native",
                   help="avx2: both runs as on a CPU without AVX-512 (see the docstring)")
    p.add_argument("--out-dir", type=Path, default=Path("runs") / "bench_train_speedrun")
    args = p.parse_args()
    if not args.data_file.is_file():
        raise SystemExit(f"{args.data_file} not found: run train_gpt2 once without --data-file "
                         "to download it, or pass --data-file")
    env = {**os.environ, **(AVX2_ONLY if args.isa == "avx2" else {})}
    # Asked in a child with the same environment, so an AVX2 cap shows in the line.
    cpu = subprocess.run([sys.executable, "-m", "sprints.01_setup_and_basics.results.devices"],
                         capture_output=True, text=True, env=env).stdout.splitlines()[0]
    print(f"CPU: {cpu}" + (" (capped at AVX2)" if args.isa == "avx2" else ""), flush=True)
    def speedrun(seed: int, i: int) -> dict:
        return run(f"cpu-speedrun seed {seed} #{i + 1}", "cpu-speedrun", args.data_file,
                   args.out_dir / f"speedrun-{seed}-{i + 1}",
                   ["--target-val-loss", str(args.target), "--seed", str(seed)], env)

    jobs = [(seed, i) for seed in args.seeds for i in range(args.repeats)]
    # The reference runs between the two halves of the speedrun runs: this shared machine's
    # speed drifts over minutes, and a drift then moves both sides of the ratio alike.
    half = (len(jobs) + 1) // 2
    rows = [speedrun(*job) for job in jobs[:half]]
    reference_row = None if args.skip_reference else run(
        "nanoGPT CPU recipe", "nanogpt-cpu", args.data_file, args.out_dir / "nanogpt", [], env)
    rows += [speedrun(*job) for job in jobs[half:]]
    if reference_row is not None:
        reference = reference_row["wall_s"]
        ratios = []
        for row in rows:
            if row["time_to_target_s"] is not None:
                ratios.append(reference / row["time_to_target_s"])
                print(f"{row['name']}: {ratios[-1]:.2f}x faster than the recipe's "
                      f"{reference:.1f} s (which ends at {reference_row['best_val_loss']:.4f})")
            else:
                print(f"{row['name']}: did not reach {args.target}")
        if ratios:
            print(f"ratio: median {statistics.median(ratios):.2f}x, range "
                  f"{min(ratios):.2f}x-{max(ratios):.2f}x over {len(ratios)} runs")
        rows.append(reference_row)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "speedrun.json").write_text(json.dumps({"cpu": cpu, "isa": args.isa,
                                                            "runs": rows}, indent=2))
    plot([rows[0]] + rows[-1:] if len(rows) > 1 else rows, args.target,
         args.out_dir / "speedrun.png")
    print(f"wrote {args.out_dir / 'speedrun.json'} and speedrun.png")


if __name__ == "__main__":
    main()
