"""Instruction fine-tuning: teach a pretrained GPT to answer instructions, and to stop.

    uv run python -m sprints.12_task_finetuning.results.instruct \\
        --init-from runs/shakespeare_gpt2_small/best.pt --out-dir runs/instruct

Each example becomes one token sequence, prompt then response (prompts.py: ``--format
alpaca``, or ``chat`` with roles), and the loss is the next-token cross-entropy on the
RESPONSE tokens only, the closing <|endoftext|> included: the prompt is context, not
something to imitate, and the <|endoftext|> is how the model learns where an answer ends
(generation stops there). instruction_data.py pads, shifts and masks a batch:

    loss = mean over response positions t of  -log softmax(logits_t)[target_t]

Training uses sprint 9's pieces, not a second design: AdamW from ``optimizers.py``, warmup +
cosine from ``lr_schedule.py``, ``precision.autocast``, ``run_logging.RunLog`` (TensorBoard
and train_log.jsonl), sprint 8's atomic checkpoints and RNG states; ``--init-from`` and LoRA
come from sprint 10 (``finetune.load_base``, ``lora.py``). The batch of step s is a pure
function of (seed, s): epoch e = s // steps_per_epoch shuffles the training examples with a
permutation seeded by (seed, e), so ``--resume`` continues exactly, loss for loss.

Written to ``--out-dir``:

    ckpt.pt          the training state (weights, AdamW moments, step, RNG): --resume reads it
    model.pt         the fine-tuned model (LoRA merged in), our checkpoint format: generate.py
                     --checkpoint and --init-from of this script read it
    splits/          train.json, val.json, test.json: the split this run used
    responses.jsonl  per test example: instruction, input, output (the reference), response
    summary.json     held-out response losses before/after, seconds per epoch, steps, tokens
    loss.png         training loss per step, validation loss per epoch
    train_log.jsonl, tensorboard/   sprint 9's RunLog (``tensorboard --logdir OUT``)

Held-out loss = the masked loss over every response token of the split (token-weighted).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from importlib import import_module
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from . import instruction_data, prompts

_arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")
_devices = import_module("sprints.01_setup_and_basics.results.devices")
_utils = import_module("sprints.08_gpt2_assembly.results.utils")
IGNORE_INDEX = instruction_data.IGNORE_INDEX
# Settings a resumed run must share with the run that wrote ckpt.pt (the rest may change).
RESUME_KEYS = ("init_from", "format", "max_length", "batch_size", "epochs", "lr", "min_lr",
               "warmup_steps", "weight_decay", "grad_clip", "dropout", "seed", "lora_rank",
               "lora_alpha", "lora_dropout", "lora_targets", "dtype", "loss_chunk")


# The small GPT this sprint's examples start from: GPT-2's tokenizer, pretrained on Tiny
# Shakespeare by sprint 9 (no GPT-2 weights can be downloaded on an offline machine).
DEFAULT_INIT = Path("runs") / "shakespeare_gpt2_small" / "best.pt"
PRETRAIN_COMMAND = (
    "uv run python -m sprints.09_train_gpt2.results.train_gpt2 --tokenizer gpt2 --n-layer 4 "
    "--n-head 4 --n-embd 256 --block-size 128 --batch-size 16 --max-steps 600 "
    "--eval-interval 600 --out-dir runs/shakespeare_gpt2_small")


def build_parser() -> argparse.ArgumentParser:
    t = _arg_types
    p = argparse.ArgumentParser(
        description="Instruction fine-tuning of a pretrained GPT (Alpaca or chat format), "
        "loss on the responses only; full or LoRA.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--init-from", default=str(DEFAULT_INIT),
                   help="our checkpoint file, a Hugging Face GPT-2 directory, or gpt2 (the hub)")
    p.add_argument("--data-file", type=Path, default=None,
                   help="a JSON list of {instruction, input, output} (default: download the "
                   "1,100 examples of LLMs-from-scratch ch. 7 once)")
    p.add_argument("--data-url", default=instruction_data.INSTRUCTION_DATA_URL,
                   help="where the default data comes from")
    p.add_argument("--download-dir", type=Path, default=instruction_data.DEFAULT_DATA_FILE.parent)
    p.add_argument("--format", choices=prompts.FORMATS, default="alpaca",
                   help="alpaca: ### Instruction / ### Input / ### Response; chat: roles")
    p.add_argument("--out-dir", type=Path, default=Path("runs") / "instruct")
    p.add_argument("--resume", action="store_true", help="continue from OUT/ckpt.pt")
    g = p.add_argument_group("LoRA (leave --lora-rank out for full fine-tuning)")
    g.add_argument("--lora-rank", type=t.positive_int, default=None)
    g.add_argument("--lora-alpha", type=t.positive_float, default=None,
                   help="the update is scaled by alpha / r (default: alpha = r)")
    g.add_argument("--lora-dropout", type=t.half_open_fraction, default=0.0)
    g.add_argument("--lora-targets", nargs="+", default=["c_attn", "c_proj", "c_fc"])
    g = p.add_argument_group("training")
    g.add_argument("--max-length", type=t.positive_int, default=256,
                   help="tokens per example the model reads; longer examples are cut, and it "
                   "is capped at the model's block size")
    g.add_argument("--epochs", type=t.positive_int, default=1)
    g.add_argument("--max-steps", type=t.positive_int, default=None,
                   help="stop after this many steps (the schedule still spans --epochs); "
                   "--resume continues")
    g.add_argument("--batch-size", type=t.positive_int, default=8)
    g.add_argument("--lr", type=t.positive_float, default=1e-3,
                   help="peak learning rate (full or LoRA). 1e-3 beat 2e-4 on the 16M Shakespeare "
                   "model (held-out loss 5.10 vs 5.85 after 1 epoch); full fine-tuning of GPT-2 "
                   "124M wants about 5e-5, as LLMs-from-scratch uses")
    g.add_argument("--min-lr", type=t.non_negative_float, default=None,
                   help="end of the cosine decay (default --lr / 10)")
    g.add_argument("--warmup-steps", type=t.non_negative_int, default=10)
    g.add_argument("--weight-decay", type=t.non_negative_float, default=0.1)
    g.add_argument("--grad-clip", type=t.non_negative_float, default=1.0, help="0 = off")
    g.add_argument("--dropout", type=t.half_open_fraction, default=0.0,
                   help="the model's dropout while fine-tuning")
    g.add_argument("--seed", type=t.non_negative_int, default=123)
    g.add_argument("--checkpoint-interval", type=t.non_negative_int, default=0,
                   help="also write ckpt.pt every N steps (0: at each epoch's end and the last "
                   "step only)")
    g = p.add_argument_group("evaluation and generation")
    g.add_argument("--eval-batch-size", type=t.positive_int, default=16)
    g.add_argument("--max-new-tokens", type=t.positive_int, default=100,
                   help="longest generated response (it stops earlier at <|endoftext|>)")
    g.add_argument("--temperature", type=t.non_negative_float, default=0.0,
                   help="0 = greedy (the default)")
    g.add_argument("--top-k", type=t.positive_int, default=None)
    g.add_argument("--max-responses", type=t.non_negative_int, default=None,
                   help="answer only the first N test instructions (default: all)")
    g = p.add_argument_group("speed")
    g.add_argument("--loss-chunk", type=t.non_negative_int, default=None,
                   help="rows per chunk of sprint 9's chunked loss, 0 = plain logits (default: "
                   "2048 with a vocabulary >= 8192)")
    g.add_argument("--device", choices=_devices.DEVICE_CHOICES, default="auto")
    g.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                   help="bfloat16 = autocast (weights stay float32)")
    g.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    return p


# ----- the loss ------------------------------------------------------------------------------
def response_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean of -log softmax(logits)[target] over the positions whose target is not -100.

    logits (B, T, V), targets (B, T). The same value as
    ``F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)``, written
    out: only the kept rows are ever normalised, so prompt and padding positions take no part
    in the loss and receive exactly zero gradient.
    """
    keep = targets != IGNORE_INDEX  # (B, T) bool
    if not keep.any():
        raise ValueError("the batch has no response token to train on (every target is -100)")
    rows = logits[keep]  # (N, V): the response positions only
    # at least float32: a bf16 softmax (autocast) would round the loss
    log_probs = F.log_softmax(rows.to(torch.promote_types(rows.dtype, torch.float32)), dim=-1)
    picked = log_probs.gather(1, targets[keep].unsqueeze(1))  # (N, 1)
    return -picked.mean()


def batch_loss(model, inputs: Tensor, targets: Tensor, loss_chunk: int = 0) -> Tensor:
    """The training loss of a batch: ``response_loss(model(inputs), targets)``, computed
    faster. The hidden states of prompt and padding positions never reach the output layer
    (their targets are -100, so their logits are not needed): with GPT-2's 50,257-word head
    that layer is most of a small model's work. ``loss_chunk`` > 0 runs the kept rows through
    sprint 9's chunked linear cross-entropy."""
    keep = targets != IGNORE_INDEX
    h = model.hidden_states(inputs)[keep]  # (B, T, C) -> (N, C), response positions
    if loss_chunk > 0:
        lm_loss = import_module("sprints.09_train_gpt2.results.lm_loss")
        return lm_loss.linear_cross_entropy(h, model.lm_head.weight, targets[keep], loss_chunk)
    return F.cross_entropy(model.lm_head(h).float(), targets[keep])


@torch.no_grad()
def heldout_loss(model, encoded, batch_size: int, pad_id: int, device, autocast,
                 loss_chunk: int = 0) -> float:
    """The masked loss over every response token of a split (each token weighs the same,
    whatever the length of its example); in order, no shuffling, dropout off."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(encoded), batch_size):
        batch = instruction_data.collate(encoded[start:start + batch_size], pad_id)
        n = int(batch.mask.sum())
        with autocast():
            loss = batch_loss(model, batch.inputs.to(device), batch.targets.to(device),
                              loss_chunk)
        total += float(loss) * n
        count += n
    model.train(was_training)
    return total / max(count, 1)


# ----- generation ----------------------------------------------------------------------------
def respond(model, tokenizer, entry: dict, fmt: str, max_new_tokens: int, device,
            temperature: float = 0.0, top_k: int | None = None,
            generator: torch.Generator | None = None) -> str:
    """The model's answer to one example's prompt: greedy (temperature 0) or sampled, stopped
    at <|endoftext|> (not part of the answer) or after ``max_new_tokens``."""
    generation = import_module("sprints.10_pretrained_and_generation.results.generation")
    ids = prompts.prompt_ids(tokenizer, entry, fmt)
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    eot = tokenizer.eot_token_id
    new = []
    for token in generation.generate(model, idx, max_new_tokens, temperature=temperature,
                                     top_k=top_k, greedy=temperature == 0,
                                     generator=generator, eos_token_id=eot,
                                     allowed_tokens=tokenizer.vocab_size):
        if int(token) == eot:
            break
        new.append(int(token))
    return tokenizer.decode(new).strip()


def write_responses(path: Path, model, tokenizer, examples, args, device) -> list[dict]:
    from tqdm.auto import tqdm

    generator = torch.Generator(device=device).manual_seed(args.seed)
    rows = []
    model.eval()
    for entry in tqdm(examples, desc="responses", disable=args.no_progress, dynamic_ncols=True):
        response = respond(model, tokenizer, entry, args.format, args.max_new_tokens, device,
                           args.temperature, args.top_k, generator)
        rows.append({"instruction": entry["instruction"], "input": entry["input"],
                     "output": entry["output"], "response": response})
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    _utils.atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return rows


# ----- the run -------------------------------------------------------------------------------
def load_examples(args) -> list[dict]:
    if args.data_file is not None:
        return instruction_data.read_examples(args.data_file)
    dest = args.download_dir / instruction_data.DEFAULT_DATA_FILE.name
    return instruction_data.read_examples(instruction_data.download(args.data_url, dest))


def settings(args, lr: float, min_lr: float, loss_chunk: int) -> dict:
    values = {k: getattr(args, k) for k in RESUME_KEYS if hasattr(args, k)}
    values.update(lr=lr, min_lr=min_lr, loss_chunk=loss_chunk, init_from=str(args.init_from))
    values["lora_targets"] = list(args.lora_targets)
    return values


def check_resume(ckpt: dict, current: dict, path: Path) -> None:
    saved = ckpt["extra"]["settings"]
    differ = {k: (saved.get(k), v) for k, v in current.items() if saved.get(k) != v}
    if differ:
        details = ", ".join(f"{k}: {a!r} then, {b!r} now" for k, (a, b) in differ.items())
        raise _utils.CheckpointError(f"{path} was written with other settings ({details}); "
                                     "resume with the same ones, or start afresh without "
                                     "--resume")


def plot(out: Path, title: str) -> None:
    """loss.png from train_log.jsonl (which holds the earlier runs' lines after a resume)."""
    finetune = import_module("sprints.10_pretrained_and_generation.results.finetune")
    records = []
    for line in (out / "train_log.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "loss" in r:
            records.append({"step": r["step"], "train_loss": r["loss"]})
        elif "val_loss" in r:
            records.append({"step": r["step"], "val_loss": r["val_loss"]})
    finetune.plot_losses(records, out / "loss.png", title)


def run(args) -> dict:
    finetune = import_module("sprints.10_pretrained_and_generation.results.finetune")
    lr_schedule = import_module("sprints.09_train_gpt2.results.lr_schedule")
    optimizers = import_module("sprints.09_train_gpt2.results.optimizers")
    precision = import_module("sprints.09_train_gpt2.results.precision")
    run_logging = import_module("sprints.09_train_gpt2.results.run_logging")
    tokenizer_to_record = import_module("sprints.08_gpt2_assembly.results.tokenizer"
                                        ).tokenizer_to_record
    lora = import_module("sprints.10_pretrained_and_generation.results.lora")

    device = _devices.pick_device(args.device)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    if dtype == torch.bfloat16:
        precision.check_bf16(device)
    use_lora = args.lora_rank is not None
    lr = args.lr
    min_lr = lr / 10 if args.min_lr is None else args.min_lr
    out = args.out_dir
    ckpt_path = out / "ckpt.pt"
    if args.resume and not ckpt_path.is_file():
        raise _utils.CheckpointError(f"--resume: there is no {ckpt_path} to continue from; "
                                     "leave --resume out to start a new run")
    torch.manual_seed(args.seed)

    # Data first (a bad file fails before the model loads), then the model.
    splits = instruction_data.split_examples(load_examples(args))
    model, tokenizer = finetune.load_base(str(args.init_from), args.dropout)
    if getattr(tokenizer, "eot_token_id", None) is None:
        raise ValueError(f"the tokenizer of {args.init_from} has no <|endoftext|> token; "
                         "instruction tuning needs one to teach where an answer stops (use a "
                         "model with GPT-2's or a BPE tokenizer)")
    pad_id = tokenizer.eot_token_id
    block = model.config.block_size
    max_length = min(args.max_length, block)
    if max_length < args.max_length:
        print(f"note: --max-length {args.max_length} is beyond the model's {block} positions; "
              f"examples are cut to {max_length} tokens", file=sys.stderr)
    split_files = instruction_data.write_splits(splits, out / "splits")
    encoded, cuts = {}, {}
    for name, rows in splits.items():
        encoded[name], cuts[name] = instruction_data.encode_examples(
            tokenizer, rows, args.format, max_length)
        if not encoded[name]:
            raise instruction_data.DataError(
                f"every {name} example's prompt fills the {max_length}-token window, leaving "
                "no response to train on; raise --max-length (up to the model's block size) "
                "or shorten the inputs")
    train = encoded["train"]
    per_epoch = instruction_data.steps_per_epoch(len(train), args.batch_size)
    total_steps = args.epochs * per_epoch
    stop = min(total_steps, args.max_steps) if args.max_steps else total_steps

    if use_lora:
        alpha = args.lora_alpha if args.lora_alpha is not None else float(args.lora_rank)
        lora.apply_lora(model, args.lora_rank, alpha, args.lora_dropout, args.lora_targets)
        mode = (f"LoRA r={args.lora_rank} alpha={alpha:g} on {' '.join(args.lora_targets)} "
                f"({len(lora.lora_layers(model))} layers)")
    else:
        mode = "full fine-tuning"
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    total_params = sum(p.numel() for p in model.parameters())
    chunk = (args.loss_chunk if args.loss_chunk is not None
             else finetune.default_loss_chunk(model.config.vocab_size))
    optimizer = optimizers.build_optimizer(model, "adamw", lr, args.weight_decay, (0.9, 0.95),
                                           avoid_dynamo=True)

    def autocast():
        return precision.autocast(device, dtype)

    def evaluate(name: str) -> float:
        return heldout_loss(model, encoded[name], args.eval_batch_size, pad_id, device,
                            autocast, chunk)

    current = settings(args, lr, min_lr, chunk)
    data_sha = hashlib.sha256(json.dumps(splits, sort_keys=True).encode()).hexdigest()
    if args.resume:
        ckpt = _utils.load_checkpoint(ckpt_path, map_location=device)
        check_resume(ckpt, current, ckpt_path)
        if ckpt["extra"]["data_sha256"] != data_sha:
            raise _utils.CheckpointError(f"{ckpt_path} was trained on other data; resume with "
                                         "the same --data-file")
        _utils.restore_checkpoint(ckpt, model=model, optimizer=optimizer, source=ckpt_path)
        _utils.set_rng_states(ckpt["rng_states"])
        state = ckpt["extra"]["state"]
        start = int(ckpt["step"])
    else:
        state = {"loss_before": {"val": evaluate("val"), "test": evaluate("test")},
                 "val_loss_per_epoch": [], "seconds_per_epoch": [], "epoch_seconds": 0.0,
                 "tokens": {"inputs": 0, "trained": 0}, "train_seconds": 0.0}
        start = 0
    print(f"{mode}: {trainable:,} trainable of {total_params:,} parameters; "
          f"{' / '.join(f'{len(encoded[n])} {n}' for n in instruction_data.SPLITS)} examples "
          f"({sum(c['truncated'] for c in cuts.values())} cut to {max_length} tokens, "
          f"{sum(c['dropped'] for c in cuts.values())} dropped); {per_epoch} steps per epoch; "
          f"device {device}, {args.dtype}")

    log = run_logging.RunLog(out, enabled=True, start_step=start, resumed=args.resume,
                             total_steps=stop, progress_bar=not args.no_progress)

    def save(step: int) -> None:
        _utils.save_checkpoint(
            ckpt_path, model=model, optimizer=optimizer, step=step, config=model.config,
            data_position={"step": step, "epoch": step // per_epoch, "seed": args.seed},
            rng_states=_utils.rng_states(),
            extra={"tokenizer": tokenizer_to_record(tokenizer),
                   "settings": current, "data_sha256": data_sha, "state": state})

    if not args.resume:
        log.evaluation(0, state["loss_before"]["val"], 0.0)
    try:
        for step in range(start, stop):
            t0 = time.perf_counter()
            lr_now = lr_schedule.lr_at(step, lr, min_lr, args.warmup_steps, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr_now * group["lr_scale"]
            batch = instruction_data.batch_at(train, args.batch_size, args.seed, step, pad_id)
            with autocast():
                loss = batch_loss(model, batch.inputs.to(device), batch.targets.to(device),
                                  chunk)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(
                params, args.grad_clip if args.grad_clip > 0 else math.inf).item()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss = loss.item()
            if not math.isfinite(loss):
                raise ValueError(f"the training loss became {loss} at step {step + 1}; try a "
                                 f"smaller --lr than {lr:g}")
            dt = time.perf_counter() - t0
            done = step + 1
            state["tokens"]["inputs"] += batch.inputs.numel()
            state["tokens"]["trained"] += int(batch.mask.sum())
            state["train_seconds"] += dt
            state["epoch_seconds"] += dt
            log.step(done, loss, lr_now, norm, batch.inputs.numel() / dt,
                     state["train_seconds"])
            if done % per_epoch == 0:  # an epoch ends: its time, the validation loss
                state["seconds_per_epoch"].append(state["epoch_seconds"])
                state["epoch_seconds"] = 0.0
                val = evaluate("val")
                state["val_loss_per_epoch"].append(val)
                log.evaluation(done, val, state["train_seconds"])
            if (done % per_epoch == 0 or done == stop
                    or (args.checkpoint_interval and done % args.checkpoint_interval == 0)):
                save(done)
                log.flush()
    finally:
        log.close()
    if stop < total_steps:
        print(f"stopped after step {stop} of {total_steps} (--max-steps); {ckpt_path} holds "
              "the state: run again with --resume to continue")
        return {"stopped_at": stop, "total_steps": total_steps}

    # Done: fold LoRA into the weights, measure, answer the test instructions, write it all.
    if use_lora:
        model = lora.merge_and_unload(model)  # W + (alpha / r) B A: an ordinary GPT again
    model.eval()
    loss_after = {"val": evaluate("val"), "test": evaluate("test")}
    model_path = _utils.save_checkpoint(
        out / "model.pt", model=model, config=model.config, step=total_steps,
        extra={"tokenizer": tokenizer_to_record(tokenizer),
               "init_from": str(args.init_from), "format": args.format, "lora": mode})
    tests = splits["test"][:args.max_responses] if args.max_responses is not None \
        else splits["test"]
    t0 = time.perf_counter()
    rows = write_responses(out / "responses.jsonl", model, tokenizer, tests, args, device)
    generate_s = time.perf_counter() - t0
    plot(out, f"instruction tuning ({args.format}, {mode})")
    summary = {
        "mode": mode, "format": args.format, "init_from": str(args.init_from),
        "examples": {n: len(encoded[n]) for n in instruction_data.SPLITS},
        "truncated": cuts, "max_length": max_length, "epochs": args.epochs,
        "batch_size": args.batch_size, "lr": lr, "min_lr": min_lr, "steps": total_steps,
        "steps_per_epoch": per_epoch, "tokens": state["tokens"],
        "trainable_parameters": trainable, "total_parameters": total_params,
        "loss_before": state["loss_before"], "loss_after": loss_after,
        "val_loss_per_epoch": state["val_loss_per_epoch"],
        "seconds_per_epoch": state["seconds_per_epoch"],
        "train_seconds": state["train_seconds"], "responses": len(rows),
        "generate_seconds": generate_s, "device": str(device), "dtype": args.dtype,
        "files": {"checkpoint": str(model_path), "training_state": str(ckpt_path),
                  "responses": str(out / "responses.jsonl"), "loss_plot": str(out / "loss.png"),
                  "splits": split_files},
    }
    _utils.atomic_write(out / "summary.json",
                        lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2) + "\n"))
    b, a = state["loss_before"], loss_after
    print(f"held-out response loss: val {b['val']:.4f} -> {a['val']:.4f}, test "
          f"{b['test']:.4f} -> {a['test']:.4f}; {total_steps} steps in "
          f"{state['train_seconds']:.1f} s; {len(rows)} responses; wrote {out}/")
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.init_from == str(DEFAULT_INIT) and not DEFAULT_INIT.is_file():
        parser.error(f"the default --init-from {DEFAULT_INIT} does not exist yet: pretrain it "
                     f"first with\n  {PRETRAIN_COMMAND}\nor pass --init-from gpt2 (with a "
                     "network), a Hugging Face GPT-2 directory or a checkpoint of ours")
    if args.lora_rank is None and (args.lora_alpha is not None or args.lora_dropout > 0):
        parser.error("--lora-alpha and --lora-dropout need --lora-rank (LoRA is off without it)")
    try:
        _devices.pick_device(args.device)
    except _devices.DeviceError as error:
        parser.error(str(error))
    try:
        run(args)
    except (instruction_data.DataError, _utils.CheckpointError, OSError, ValueError,
            RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
