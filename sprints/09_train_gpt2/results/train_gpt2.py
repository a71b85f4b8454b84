"""Train a GPT (sprint 8's model) on a text file: the project's main training tool.

    uv run python -m sprints.09_train_gpt2.results.train_gpt2 \\
        --data-file /path/to/input.txt --preset cpu-speedrun --target-val-loss 1.88

This file is the loop, top to bottom; each piece it calls lives in a module of its own:

    settings.py          the command line, presets, checks      precision.py    --dtype
    training_data.py     text or shards -> tokens (data.py,     model_setup.py  the GPT, DDP
                         shards.py: batches)                    fsdp.py         FSDP2
    train_step.py        one optimizer step                     evaluation.py   val loss, samples
    checkpoint_state.py  save / resume                          run_logging.py  TensorBoard, JSONL
    optimizers.py        AdamW / Muon       lr_schedule.py  cosine / WSD    lm_loss.py  the loss
    hellaswag.py         --hellaswag-every
"""

from __future__ import annotations

import time

_T_IMPORT = time.time()  # before torch's import: the fallback "process start"

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from importlib import import_module  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from . import data as data_lib  # noqa: E402
from . import fsdp, hellaswag  # noqa: E402
from .checkpoint_state import (  # noqa: E402
    Progress,
    gather_rank_rngs,
    gather_training_state,
    restore_progress,
    restore_weights,
    save_guarded,
)
from .cpu_allocator import keep_freed_memory  # noqa: E402
from .evaluation import evaluate, sample_text  # noqa: E402
from .lm_loss import LanguageModelLoss  # noqa: E402
from .lr_schedule import lr_at  # noqa: E402
from .model_setup import (  # noqa: E402
    build_model,
    check_model_fits,
    default_loss_chunk,
    is_pretrained_name,
    model_vocab_size,
    wrap_for_training,
)
from .optimizers import build_optimizer  # noqa: E402
from .precision import bf16_is_fast, pick_dtype  # noqa: E402
from .run_logging import RunLog  # noqa: E402
from .settings import PRESETS, build_parser, check_settings, resolve_settings  # noqa: E402, F401
from .train_step import NAN_HOOK_ENV, TrainingError, train_step  # noqa: E402, F401
from .training_data import load_training_data  # noqa: E402

_utils = import_module("sprints.08_gpt2_assembly.results.utils")
_devices = import_module("sprints.01_setup_and_basics.results.devices")


def process_start_time() -> float:
    """Wall-clock time at which this process started (Linux /proc), else this module's import."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.time() - uptime + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return _T_IMPORT


def setup_processes(args) -> tuple[torch.device, int, int]:
    """(device, rank, world_size). Under torchrun (WORLD_SIZE > 1) this joins the process
    group: NCCL between GPUs, gloo between CPU processes, each GPU process on its own GPU."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = _devices.pick_device(args.device)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local_rank)
            device = torch.device("cuda", local_rank)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cpu":
        keep_freed_memory()  # no page-fault churn from malloc (cpu_allocator.py: 21 -> 16 s)
    if args.threads:
        torch.set_num_threads(args.threads)
    elif device.type == "cpu" and world_size > 1:  # share the cores, don't oversubscribe them
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    return device, rank, world_size


def load_start_checkpoints(args, latest_path: Path) -> tuple[dict | None, dict | None]:
    """(checkpoint to resume from, checkpoint to initialise from), either may be None."""
    resume_ckpt = init_ckpt = None
    if args.resume:
        if not latest_path.is_file():
            raise ValueError(f"--resume: no checkpoint at {latest_path}; run without --resume "
                             "first, or point --out-dir at the run to continue")
        resume_ckpt = _utils.load_checkpoint(latest_path)
    if args.init_from != "scratch" and Path(args.init_from).is_file():
        init_ckpt = _utils.load_checkpoint(args.init_from)
    if args.tokenizer is None and args.data_dir is None:  # default: what we start from
        pretrained = is_pretrained_name(args.init_from) or Path(args.init_from).is_dir()
        saved = (resume_ckpt or init_ckpt or {}).get("extra", {}).get("tokenizer", {})
        if saved.get("type") == "bpe":
            args.tokenizer = "bpe"  # training_data takes the tokenizer from the checkpoint
        else:
            args.tokenizer = "gpt2" if pretrained or saved.get("type") == "gpt2" else "char"
    return resume_ckpt, init_ckpt


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"{_devices.describe_cpu()}, {torch.get_num_threads()} torch thread(s)"


def load_hellaswag(args, tokenizer, rank: int) -> list:
    """The HellaSwag items for --hellaswag-every, tokenized once (rank 0 downloads them)."""
    download = args.hellaswag_file is None and dist.is_initialized()
    if download and rank != 0:
        dist.barrier()  # let rank 0 download first
    try:
        items = hellaswag.load_items(args.hellaswag_file, hellaswag.DEFAULT_DOWNLOAD_DIR,
                                     args.hellaswag_items)
    except hellaswag.HellaSwagError as error:  # its advice names hellaswag.py's own flag
        raise hellaswag.HellaSwagError(
            str(error).replace("--data-file", "--hellaswag-file")) from None
    if download and rank == 0:
        dist.barrier()
    encoded = hellaswag.encode_items(items, tokenizer)
    skipped = sum(item is None for item in encoded)
    if skipped == len(encoded):
        raise hellaswag.HellaSwagError(
            f"--hellaswag-every: none of the {len(items)} HellaSwag items can be written with "
            f"the {tokenizer.name} tokenizer's vocabulary; train with --tokenizer gpt2")
    if skipped and rank == 0:
        print(f"warning: --hellaswag-every scores {len(encoded) - skipped} of {len(items)} "
              f"items; {skipped} use characters outside the {tokenizer.name} vocabulary",
              file=sys.stderr)
    return encoded


def diverged_message(loss: float, step: int, latest_path: Path, last_good: int | None) -> str:
    where = (f"the last good checkpoint {latest_path} (step {last_good}) is intact"
             if last_good is not None else "no checkpoint had been written yet")
    return (f"loss became {loss} at step {step}; stopped without applying that update; "
            f"{where}. Lower --lr or raise --warmup-steps, then --resume.")


def train(args: argparse.Namespace) -> dict:
    t_start = process_start_time()
    resolve_settings(args)
    device, rank, world_size = setup_processes(args)
    master = rank == 0
    out = args.out_dir
    latest_path, best_path = out / "latest.pt", out / "best.pt"

    # --- data, and what the run starts from
    resume_ckpt, init_ckpt = load_start_checkpoints(args, latest_path)
    check_settings(args, world_size)
    source_tokenizer = (resume_ckpt or init_ckpt or {}).get("extra", {}).get("tokenizer")
    tokenizer, tokens = load_training_data(args, source_tokenizer, rank)
    hellaswag_items = load_hellaswag(args, tokenizer, rank) if args.hellaswag_every else None

    # --- model and optimizer (one seed before building: the same initial weights on all ranks)
    torch.manual_seed(args.seed)
    model = build_model(args, model_vocab_size(tokenizer))
    check_model_fits(model, args, tokenizer.vocab_size)
    tokens.check_block_size(args.block_size)
    if resume_ckpt is not None:
        restore_weights(resume_ckpt, model, latest_path)  # whole weights, before any sharding
    model.to(device)
    if args.parallel == "fsdp" and world_size > 1:
        fsdp.shard_model(model, device, world_size)
    dtype = pick_dtype(args.dtype, device)
    # fused AdamW (one kernel per parameter for the whole update): at 6 x 384 it measured
    # 1,881 against 1,801 tokens/s for foreach on a 2-core Intel Xeon (AVX-512 yes, AMX yes);
    # on a 2-core AMD EPYC (AVX-512 yes, AVX-512 BF16 yes, AMX no) foreach was 6% and 18%
    # ahead in two runs (benchmarks/README.md). Not switched per CPU: both gaps are smaller
    # than a run-to-run spread of up to 25% there.
    optimizer = build_optimizer(model, args.optimizer, args.lr, args.weight_decay,
                                (args.beta1, args.beta2), muon_lr=args.muon_lr, fused=True,
                                avoid_dynamo=not args.compile and world_size == 1,
                                ns_dtype=torch.bfloat16 if bf16_is_fast(device) else torch.float32,
                                ns_steps=args.muon_ns_steps)
    if resume_ckpt is not None:
        progress = restore_progress(resume_ckpt, model, optimizer, latest_path, args.seed, rank,
                                    world_size)
    else:
        progress = Progress()
        torch.manual_seed(args.seed + 1000 * (rank + 1))  # dropout masks differ per rank
    chunk = args.loss_chunk if args.loss_chunk is not None else default_loss_chunk(
        model.config.vocab_size)
    loss_module = LanguageModelLoss(model, chunk)
    runner = wrap_for_training(loss_module, device, world_size, args.compile, args.parallel)
    sharded = fsdp.is_sharded(model)  # then every rank runs every forward, samples included
    params = [p for p in model.parameters() if p.requires_grad]

    # --- outputs (rank 0 writes, the others' RunLog does nothing)
    log = RunLog(out, master, progress.step, args.resume, args.max_steps, not args.no_progress)
    block = args.block_size
    tokens_per_step = args.batch_size * block * args.grad_accum_steps
    log.print(f"model: {model.num_parameters() / 1e6:.2f}M parameters, {model.config.n_layer} "
              f"layers, {model.config.n_head} heads, width {model.config.n_embd}, block {block}"
              f", vocab {model.config.vocab_size} ({args.tokenizer}); {device_name(device)}, "
              f"{str(dtype).replace('torch.', '')}, {args.optimizer}, {world_size} process(es)")
    log.print(f"data: {len(tokens.train):,} training / {len(tokens.val):,} validation tokens; "
              f"{tokens_per_step:,} tokens per step")

    def save(path: Path) -> None:
        elapsed = progress.elapsed_before + time.time() - t_start
        save_guarded(path, model_state, optimizer_state, model.config.to_dict(), progress.step,
                     progress.tokens_seen, progress.best_val, tokenizer, args, elapsed,
                     rank_rngs)

    # --- the loop
    # The training micro-batch: it fits memory by construction, and on a CPU small batches
    # evaluate faster (cache-sized): the speedrun's split took 1.0 s in batches of 32 windows
    # against 1.6 s in batches of 512 on a 2-core AMD EPYC (AVX-512 yes, AVX-512 BF16 yes,
    # AMX no).
    eval_batch = args.eval_batch_size or max(1, args.batch_size // world_size)
    decay_steps = args.lr_decay_steps or args.max_steps
    reached, time_to_target, last_val = False, None, None
    last_good = progress.step if resume_ckpt is not None else None
    t_loop, tokens_at_loop = time.time(), progress.tokens_seen
    try:
        while progress.step < args.max_steps:
            lr = lr_at(progress.step, args.lr, args.min_lr, args.warmup_steps, decay_steps,
                       args.lr_schedule, args.cooldown_fraction)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            t_step = time.time()
            loss, grad_norm = train_step(runner, optimizer, params, tokens.train, args,
                                         progress.step, device, dtype, rank, world_size)
            if not math.isfinite(loss):
                raise TrainingError(diverged_message(loss, progress.step + 1, latest_path,
                                                     last_good))
            progress.step += 1
            progress.tokens_seen += tokens_per_step
            step = progress.step
            log.step(step, loss, lr, grad_norm, tokens_per_step / max(time.time() - t_step, 1e-9),
                     time.time() - t_start)

            is_last = step == args.max_steps
            do_eval = is_last or (step % args.eval_interval == 0 and step >= args.eval_start)
            improved = False
            if do_eval:
                last_val = evaluate(loss_module, tokens.val, block, eval_batch, device, dtype,
                                    rank, world_size, args.eval_tokens, lockstep=sharded)
                now = time.time() - t_start
                if args.target_val_loss is not None and last_val <= args.target_val_loss:
                    reached, time_to_target = True, progress.elapsed_before + now
                improved = last_val < progress.best_val
                progress.best_val = min(progress.best_val, last_val)
                sample = None
                if (master or sharded) and args.sample_tokens > 0:
                    sample = sample_text(model, tokenizer, args.sample_tokens, args.seed + step,
                                         device)
                log.evaluation(step, last_val, now, sample)

            if hellaswag_items and (is_last or step % args.hellaswag_every == 0):
                # Under FSDP every forward is a collective: each rank scores all the items.
                split = (0, 1) if sharded else (rank, world_size)
                scores = hellaswag.evaluate_hellaswag(model, tokenizer, hellaswag_items, device,
                                                      dtype, rank=split[0], world_size=split[1])
                log.scalars(step, {"hellaswag/acc": scores["acc"],
                                   "hellaswag/acc_norm": scores["acc_norm"]},
                            time.time() - t_start)
                log.print(f"step {step}: HellaSwag acc {scores['acc']:.4f}, acc_norm "
                          f"{scores['acc_norm']:.4f} ({scores['n']} items)")

            # Every rank takes the same decision (the validation loss is all-reduced).
            save_latest = is_last or reached or (
                args.checkpoint_interval and step % args.checkpoint_interval == 0) or (
                not args.checkpoint_interval and do_eval)
            if improved or save_latest:  # collectives: every rank gathers, rank 0 writes
                rank_rngs = gather_rank_rngs(world_size)
                model_state, optimizer_state = gather_training_state(model, optimizer)
            if master:
                log.flush()
                if improved:
                    save(best_path)
                if save_latest:
                    save(latest_path)
                    last_good = step
            if reached:
                break
    finally:
        log.close()

    loop_s = time.time() - t_loop
    summary = {
        "best_val_loss": progress.best_val if math.isfinite(progress.best_val) else None,
        "best_val_perplexity": (math.exp(progress.best_val) if math.isfinite(progress.best_val)
                                else None),
        "final_step": progress.step,
        "tokens_seen": progress.tokens_seen,
        "elapsed_s": progress.elapsed_before + time.time() - t_start,
        "tokens_per_s": (progress.tokens_seen - tokens_at_loop) / max(loop_s, 1e-9),
        "reached_target": reached,
        "time_to_target_s": time_to_target,
        "last_val_loss": last_val,
        "world_size": world_size,
        "dtype": str(dtype).replace("torch.", ""),
        "machine": device_name(device),
    }
    if master:
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        train(args)
    except (data_lib.DataError, _utils.CheckpointError, TrainingError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
