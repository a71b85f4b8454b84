"""Sprint 9: the training tool (train_gpt2.py) and its pieces.

References: closed-form formulas and torch's own schedulers (LR), torch's cross_entropy
(fused loss), a big-batch gradient (accumulation), TensorBoard's EventAccumulator,
torch.load(weights_only=True), a real HTTP server on 127.0.0.1, SIGKILL + resume against an
uninterrupted run, and torchrun with two gloo processes against one process.
"""

from __future__ import annotations

import http.server
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from importlib import import_module
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
T9 = "sprints.09_train_gpt2.results"
train_gpt2 = import_module(f"{T9}.train_gpt2")
data_lib = import_module(f"{T9}.data")
lm_loss = import_module(f"{T9}.lm_loss")
lr_schedule = import_module(f"{T9}.lr_schedule")
optimizers = import_module(f"{T9}.optimizers")
GPTConfig = import_module("sprints.08_gpt2_assembly.results.config").GPTConfig
GPT_PRESETS = import_module("sprints.08_gpt2_assembly.results.config").PRESETS
GPT = import_module("sprints.08_gpt2_assembly.results.model").GPT

SUMMARY_KEYS = {"best_val_loss", "best_val_perplexity", "final_step", "tokens_seen",
                "elapsed_s", "tokens_per_s", "reached_target", "time_to_target_s"}


def make_text(n_chars: int = 12000, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    words = ["to", "be", "or", "not", "that", "is", "the", "question", "whether", "tis",
             "nobler", "in", "mind", "suffer", "slings", "arrows", "KING:", "QUEEN:"]
    out, size = [], 0
    while size < n_chars:
        w = words[rng.integers(len(words))]
        sep = "\n" if rng.random() < 0.1 else " "
        out.append(w + sep)
        size += len(w) + 1
    return "".join(out)[:n_chars]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "input.txt"
    path.write_text(make_text(), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def tiny_args(data_file, out_dir, *extra) -> list[str]:
    return ["--data-file", str(data_file), "--out-dir", str(out_dir),
            "--cache-dir", str(Path(out_dir).parent / "cache"),
            "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16",
            "--batch-size", "4", "--max-steps", "10", "--eval-interval", "5", "--warmup-steps",
            "2", "--lr", "3e-3", "--sample-tokens", "8", "--threads", "1", "--no-progress",
            "--dtype", "float32",  # auto would differ between CPUs; exact comparisons need one
            *extra]


def read_log(out_dir) -> list[dict]:
    lines = (Path(out_dir) / "train_log.jsonl").read_text().splitlines()
    return [json.loads(ln) for ln in lines if ln.strip()]


def step_losses(out_dir) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_log(out_dir) if "loss" in r}


# ----- pieces ----------------------------------------------------------------------------------
def test_lr_schedule_matches_closed_form_and_torch_scheduler():
    max_lr, min_lr, warmup, decay = 1e-3, 1e-4, 10, 110
    # warmup: linear from max_lr/warmup up to max_lr
    for s in range(warmup):
        assert lr_schedule.lr_at(s, max_lr, min_lr, warmup, decay) == pytest.approx(
            max_lr * (s + 1) / warmup)
    # decay: torch's CosineAnnealingLR with T_max = decay - warmup is the same curve
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=max_lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=decay - warmup, eta_min=min_lr)
    for s in range(warmup, decay):
        assert lr_schedule.lr_at(s, max_lr, min_lr, warmup, decay) == pytest.approx(
            opt.param_groups[0]["lr"], rel=1e-9)
        opt.step()
        sched.step()
    mid = warmup + (decay - warmup) // 2
    assert lr_schedule.lr_at(mid, max_lr, min_lr, warmup, decay) == pytest.approx(
        (max_lr + min_lr) / 2)
    for s in (decay, decay + 50):
        assert lr_schedule.lr_at(s, max_lr, min_lr, warmup, decay) == min_lr


def test_wsd_schedule_is_warmup_then_constant_then_torchs_linear_cooldown():
    max_lr, min_lr, warmup, decay, fraction = 2e-2, 0.0, 10, 100, 0.3
    lr = [lr_schedule.lr_at(s, max_lr, min_lr, warmup, decay, "wsd", fraction)
          for s in range(decay + 5)]
    cooldown_start = decay - 30
    assert lr[:warmup] == pytest.approx([max_lr * (s + 1) / warmup for s in range(warmup)])
    assert lr[warmup:cooldown_start] == [max_lr] * (cooldown_start - warmup)
    # the cooldown is torch's LinearLR from factor 1 down to min_lr / max_lr
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=max_lr)
    sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=min_lr / max_lr,
                                              total_iters=decay - cooldown_start)
    for s in range(cooldown_start, decay + 5):
        assert lr[s] == pytest.approx(opt.param_groups[0]["lr"], abs=1e-12), s
        opt.step()
        sched.step()
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_schedule.lr_at(50, max_lr, min_lr, warmup, decay, "step")


def small_gpt(vocab=11, **kw):
    torch.manual_seed(0)
    cfg = dict(vocab_size=vocab, block_size=16, n_layer=2, n_head=2, n_embd=16)
    cfg.update(kw)
    return GPT(GPTConfig(**cfg))


def test_weight_decay_only_on_2d_weights():
    model = small_gpt()
    groups = optimizers.param_groups(model, weight_decay=0.1)
    decay_ids = {id(p) for p in groups[0]["params"]}
    no_decay_ids = {id(p) for p in groups[1]["params"]}
    assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0
    for name, p in model.named_parameters():
        assert (id(p) in decay_ids) == (p.dim() == 2), name
        assert (id(p) in no_decay_ids) == (p.dim() == 1), name
    # the tied wte / lm_head matrix is one parameter, listed once
    all_ids = [id(p) for g in groups for p in g["params"]]
    assert len(all_ids) == len(set(all_ids)) == len(list(model.parameters()))
    opt = optimizers.build_optimizer(model, "adamw", 1e-3, 0.1, (0.9, 0.99))
    assert isinstance(opt.optimizers["adamw"], torch.optim.AdamW)


def test_muon_gets_hidden_matrices_only():
    model = small_gpt()
    opt = optimizers.build_optimizer(model, "muon", 1e-3, 0.0, (0.9, 0.99), muon_lr=0.02)
    muon_ids = {id(p) for g in opt.optimizers["muon"].param_groups for p in g["params"]}
    adamw_ids = {id(p) for g in opt.optimizers["adamw"].param_groups for p in g["params"]}
    assert not muon_ids & adamw_ids
    assert muon_ids | adamw_ids == {id(p) for p in model.parameters()}
    for name, p in model.named_parameters():
        hidden = p.dim() == 2 and name.startswith("transformer.h.")
        assert (id(p) in muon_ids) == hidden, name
    assert model.transformer.wte.weight is model.lm_head.weight
    assert id(model.lm_head.weight) in adamw_ids


@pytest.mark.parametrize("ns_steps", [5, 3])
def test_batched_muon_follows_torch_muon(ns_steps):
    # torch.optim.Muon runs Newton-Schulz in bf16, ours in float32: same rule, ~1% apart.
    torch.manual_seed(0)
    shapes = [(48, 16), (16, 16), (48, 16), (16, 64)]
    ref = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
    ours = [torch.nn.Parameter(p.detach().clone()) for p in ref]
    start = [p.detach().clone() for p in ref]
    opt_ref = torch.optim.Muon(ref, lr=0.02, weight_decay=0.1, ns_steps=ns_steps)
    opt_ours = optimizers.BatchedMuon(ours, lr=0.02, weight_decay=0.1, ns_steps=ns_steps)
    for _ in range(3):
        for p, q in zip(ref, ours, strict=True):
            g = torch.randn_like(p)
            p.grad, q.grad = g.clone(), g.clone()
        opt_ref.step()
        opt_ours.step()
    for p, q, p0 in zip(ref, ours, start, strict=True):
        moved = (p.detach() - p0).abs().max()
        assert (p.detach() - q.detach()).abs().max() < 0.03 * moved


def test_linear_cross_entropy_matches_torch():
    torch.manual_seed(0)
    h = torch.randn(37, 8, requires_grad=True)
    w = torch.randn(11, 8, requires_grad=True)
    t = torch.randint(0, 11, (37,))
    t[[3, 20]] = -100
    ours = lm_loss.linear_cross_entropy(h, w, t, chunk_size=5)
    ref = F.cross_entropy(h @ w.T, t, ignore_index=-100)
    g_ours = torch.autograd.grad(ours * 2.5, (h, w))
    g_ref = torch.autograd.grad(ref * 2.5, (h, w))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    for a, b in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # bf16 matmuls: close to the float32 reference
    bf = lm_loss.linear_cross_entropy(h, w, t, chunk_size=7, compute_dtype=torch.bfloat16)
    assert abs(bf.item() - ref.item()) < 0.05
    # a frozen output matrix (LoRA): the same gradient of h, and none for the matrix
    frozen = w.detach()
    (g_h,) = torch.autograd.grad(lm_loss.linear_cross_entropy(h, frozen, t, chunk_size=5), h)
    torch.testing.assert_close(g_h, torch.autograd.grad(
        F.cross_entropy(h @ frozen.T, t, ignore_index=-100), h)[0], rtol=1e-4, atol=1e-6)


def test_hidden_states_times_head_are_the_gpt_logits():
    model = small_gpt().eval()
    idx = torch.randint(0, 11, (3, 16))
    logits, _ = model(idx)
    h = model.hidden_states(idx)
    torch.testing.assert_close(h @ model.lm_head.weight.T, logits, rtol=1e-5, atol=1e-5)


def test_grad_accumulation_equals_big_batch_gradient():
    model = small_gpt()
    ids = np.random.default_rng(0).integers(0, 11, 500).astype(np.uint16)
    loss_fn = lm_loss.LanguageModelLoss(model, chunk_size=0)
    micro = [data_lib.get_batch(ids, 16, 4, seed=1, step=0, micro_step=m) for m in range(2)]
    for x, y in micro:
        (loss_fn(x, y) / 2).backward()
    acc = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    x = torch.cat([m[0] for m in micro])
    y = torch.cat([m[1] for m in micro])
    loss_fn(x, y).backward()
    for a, p in zip(acc, model.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad, rtol=1e-5, atol=1e-7)


def test_batches_are_a_function_of_seed_and_step_and_ranks_split_them():
    ids = np.arange(1000, dtype=np.uint16)
    x1, y1 = data_lib.get_batch(ids, 8, 6, seed=3, step=7)
    x2, _ = data_lib.get_batch(ids, 8, 6, seed=3, step=7)
    assert torch.equal(x1, x2)
    torch.testing.assert_close(y1[:, :-1], x1[:, 1:])  # targets are inputs shifted by one
    halves = [data_lib.get_batch(ids, 8, 6, 3, 7, rank=r, world_size=2)[0] for r in range(2)]
    assert torch.equal(torch.cat(halves), x1)


def test_token_cache_is_uint16_and_keyed_by_content(tmp_path):
    tok = import_module("sprints.08_gpt2_assembly.results.tokenizer").get_tokenizer(
        "char", text="abcd")
    a = data_lib.encode_cached(tok, "abcabc", tmp_path)
    b = data_lib.encode_cached(tok, "abcabd", tmp_path)
    files = sorted(tmp_path.glob("*.npy"))
    assert len(files) == 2 and np.load(files[0]).dtype == np.uint16
    assert a.tolist() == tok.encode("abcabc") and b.tolist() == tok.encode("abcabd")
    assert data_lib.encode_cached(tok, "abcabc", tmp_path).tolist() == a.tolist()


# ----- download --------------------------------------------------------------------------------
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_from_local_server_then_train_on_it(tmp_path):
    served = tmp_path / "www"
    served.mkdir()
    (served / "input.txt").write_text(make_text(6000), encoding="utf-8")
    handler = lambda *a, **k: _Quiet(*a, directory=str(served), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/input.txt"
        data_dir = tmp_path / "data"
        out = tmp_path / "run"
        args = tiny_args("x", out, "--max-steps", "2")
        i = args.index("--data-file")
        args = args[:i] + args[i + 2:] + ["--data-url", url, "--download-dir", str(data_dir)]
        assert train_gpt2.main(args) == 0
    finally:
        server.shutdown()
    assert (data_dir / "input.txt").read_bytes() == (served / "input.txt").read_bytes()
    assert (out / "summary.json").is_file()


def test_download_offline_names_data_file_flag(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(data_lib.DataError, match="--data-file"):
        data_lib.download(f"http://127.0.0.1:{port}/input.txt", tmp_path / "x.txt",
                          timeout=2, retries=2, backoff_s=0.0)
    assert not (tmp_path / "x.txt").exists()


# ----- end to end ------------------------------------------------------------------------------
def test_end_to_end_summary_tensorboard_checkpoints(text_file, tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    out = tmp_path / "run"
    assert train_gpt2.main(tiny_args(text_file, out, "--target-val-loss", "0.01")) == 0
    printed = capsys.readouterr().out.split("--- sample ---\n")[1:]
    printed = [chunk.split("\n--------------")[0] for chunk in printed]
    summary = json.loads((out / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert summary["final_step"] == 10 and summary["tokens_seen"] == 10 * 4 * 16
    assert summary["reached_target"] is False and summary["time_to_target_s"] is None
    assert summary["best_val_perplexity"] == pytest.approx(math.exp(summary["best_val_loss"]))

    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/grad_norm", "train/tokens_per_s", "val/loss",
            "val/perplexity"} <= tags
    assert [e.step for e in acc.Scalars("train/loss")] == list(range(1, 11))
    val = {e.step: e.value for e in acc.Scalars("val/loss")}
    assert sorted(val) == [5, 10]
    assert min(val.values()) == pytest.approx(summary["best_val_loss"], rel=1e-6)
    # the text sample of each evaluation is in TensorBoard too, as printed
    samples = acc.Tensors("val/sample/text_summary")
    assert [e.step for e in samples] == [5, 10] and len(printed) == 2
    for event, text in zip(samples, printed, strict=True):
        assert make_ndarray(event.tensor_proto).item().decode() == text

    latest = torch.load(out / "latest.pt", weights_only=True)
    best = torch.load(out / "best.pt", weights_only=True)
    assert latest["step"] == 10 and {"model", "optimizer", "config", "rng_states",
                                      "data_position"} <= set(latest)
    chars = best["extra"]["tokenizer"]["chars"]
    assert set(chars) == set(text_file.read_text())

    # The best checkpoint's validation loss, recomputed independently over every token of the
    # validation split with the GPT's own forward, equals the reported best_val_loss.
    model = GPT(GPTConfig.from_dict(best["config"]))
    model.load_state_dict(best["model"])
    model.eval()
    text = text_file.read_text()
    val_text = text[int(len(text) * 0.9):]
    ids = torch.tensor([chars.index(c) for c in val_text])
    total, count = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(ids) - 1, 16):
            x = ids[s:s + 16][: len(ids) - 1 - s]
            y = ids[s + 1:s + 17]
            logits, _ = model(x[None])
            total += F.cross_entropy(logits[0], y, reduction="sum").item()
            count += len(y)
    assert total / count == pytest.approx(summary["best_val_loss"], rel=1e-5)


def test_target_val_loss_stops_early(text_file, tmp_path):
    out = tmp_path / "run"
    assert train_gpt2.main(tiny_args(text_file, out, "--target-val-loss", "100")) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reached_target"] is True and summary["final_step"] == 5
    assert 0 < summary["time_to_target_s"] <= summary["elapsed_s"]


# ----- resume after kill -9 ----------------------------------------------------------------------
def _cli(args: list[str]) -> list[str]:
    return [sys.executable, "-m", f"{T9}.train_gpt2", *args]


def test_resume_after_sigkill_follows_the_same_losses(text_file, tmp_path):
    common = ["--max-steps", "40", "--eval-interval", "20", "--checkpoint-interval", "3",
              "--dropout", "0.1"]  # dropout: the RNG state must be restored too
    ref = tmp_path / "ref"
    assert train_gpt2.main(tiny_args(text_file, ref, *common)) == 0
    out = tmp_path / "killed"
    proc = subprocess.Popen(_cli(tiny_args(text_file, out, *common)), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        log = out / "train_log.jsonl"
        if log.exists() and len(step_losses(out)) >= 8:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = max(step_losses(out))
    assert killed_at < 40, "the run finished before it could be killed"
    resumed = subprocess.run(_cli(tiny_args(text_file, out, *common, "--resume")), cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    a, b = step_losses(ref), step_losses(out)
    assert sorted(b) == list(range(1, 41))
    for s in range(1, 41):
        assert b[s] == pytest.approx(a[s], rel=1e-6, abs=1e-7), s


# ----- data parallel ---------------------------------------------------------------------------
def test_two_gloo_processes_match_one_process(text_file, tmp_path):
    common = ["--max-steps", "6", "--eval-interval", "3", "--batch-size", "4"]
    one = tmp_path / "one"
    assert train_gpt2.main(tiny_args(text_file, one, *common)) == 0
    two = tmp_path / "two"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", f"{T9}.train_gpt2", *tiny_args(text_file, two, *common)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    a, b = read_log(one), read_log(two)
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        assert ra["step"] == rb["step"]
        key = "loss" if "loss" in ra else "val_loss"
        assert rb[key] == pytest.approx(ra[key], rel=1e-5)
    s1 = json.loads((one / "summary.json").read_text())
    s2 = json.loads((two / "summary.json").read_text())
    assert s2["world_size"] == 2 and s2["tokens_seen"] == s1["tokens_seen"]


def start_two_ranks(out: Path, args: list[str]) -> list[subprocess.Popen]:
    """The two gloo workers torchrun would start (its environment variables), without its
    launcher process (one torch import less per run); torchrun itself is tested above."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out.mkdir(parents=True, exist_ok=True)
    procs = []
    for rank in range(2):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port), "WORLD_SIZE": "2", "RANK": str(rank),
               "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2"}
        with open(out / f"stderr.{rank}.txt", "a") as err:  # a file: no pipe to fill
            procs.append(subprocess.Popen(_cli(args), cwd=ROOT, env=env,
                                          stdout=subprocess.DEVNULL, stderr=err))
    return procs


def wait_all(procs: list[subprocess.Popen], out_dirs: list[Path]) -> None:
    for proc in procs:
        proc.wait(timeout=300)
    for proc, out in zip(procs, out_dirs, strict=True):
        errors = "".join(p.read_text()[-2000:] for p in out.glob("stderr.*.txt"))
        assert proc.returncode == 0, errors


def test_two_gloo_processes_with_dropout_resume_exactly(text_file, tmp_path, capsys):
    # Each rank draws its own dropout masks, so each rank's RNG state must be saved and
    # restored: stopped at step 4 and resumed, the losses equal an uninterrupted run's.
    common = ["--eval-interval", "4", "--batch-size", "4", "--dropout", "0.1",
              "--lr-decay-steps", "8"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    wait_all(start_two_ranks(full, tiny_args(text_file, full, *common, "--max-steps", "8"))
             + start_two_ranks(cut, tiny_args(text_file, cut, *common, "--max-steps", "4")),
             [full, full, cut, cut])
    assert len(torch.load(cut / "latest.pt", weights_only=True)["extra"]["rank_rng_states"]) == 2
    # Resumed by ONE process, the 2-process checkpoint still trains, with a warning that the
    # run is no longer bit-for-bit.
    one = tmp_path / "one"
    one.mkdir()
    (one / "latest.pt").write_bytes((cut / "latest.pt").read_bytes())
    assert train_gpt2.main(tiny_args(text_file, one, *common, "--max-steps", "6",
                                     "--resume")) == 0
    assert "holds the RNG states of 2 process(es), this run has 1" in capsys.readouterr().err
    wait_all(start_two_ranks(cut, tiny_args(text_file, cut, *common, "--max-steps", "8",
                                            "--resume")), [cut, cut])
    a, b = step_losses(full), step_losses(cut)
    assert sorted(b) == sorted(a) == list(range(1, 9))
    for step in range(5, 9):
        assert b[step] == pytest.approx(a[step], rel=1e-6, abs=0), step


def test_fsdp_two_processes_match_one_and_its_checkpoint_resumes_in_one(text_file, tmp_path):
    # FSDP2 over two gloo processes: the same losses as one process with the same global
    # batch; its checkpoint holds whole tensors and resumes in a plain one-process run on the
    # uninterrupted run's trajectory (so the gathered AdamW moments are the right ones).
    common = ["--n-layer", "2", "--optimizer", "adamw", "--eval-interval", "3",
              "--batch-size", "4", "--lr-decay-steps", "8"]
    one, sharded = tmp_path / "one", tmp_path / "fsdp"
    assert train_gpt2.main(tiny_args(text_file, one, *common, "--max-steps", "8")) == 0
    wait_all(start_two_ranks(sharded, tiny_args(text_file, sharded, *common, "--max-steps", "6",
                                                "--parallel", "fsdp")), [sharded, sharded])
    ckpt = torch.load(sharded / "latest.pt", weights_only=True)
    reference = torch.load(one / "latest.pt", weights_only=True)
    assert {k: v.shape for k, v in ckpt["model"].items()} == {
        k: v.shape for k, v in reference["model"].items()}
    assert ckpt["optimizer"]["adamw"]["param_groups"][0]["params"] == (
        reference["optimizer"]["adamw"]["param_groups"][0]["params"])
    assert train_gpt2.main(tiny_args(text_file, sharded, *common, "--max-steps", "8",
                                     "--resume")) == 0
    a, b = read_log(one), read_log(sharded)
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        key = "loss" if "loss" in ra else "val_loss"
        assert rb[key] == pytest.approx(ra[key], rel=1e-5), ra["step"]


# ----- bad input -------------------------------------------------------------------------------
def run_expect_error(args, capsys, *phrases):
    assert train_gpt2.main(args) == 1
    err = capsys.readouterr().err
    for phrase in phrases:
        assert phrase in err, err
    return err


def test_bad_data_files(tmp_path, capsys):
    out = tmp_path / "run"
    run_expect_error(tiny_args(tmp_path / "missing.txt", out), capsys, "does not exist",
                     "--data-file")
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    run_expect_error(tiny_args(empty, out), capsys, "is empty")
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\xe9 ".encode("latin-1") * 100)
    run_expect_error(tiny_args(latin, out), capsys, "not UTF-8")
    short = tmp_path / "short.txt"
    short.write_text("abcdefghij" * 5)  # validation split: 5 characters < block_size + 1
    run_expect_error(tiny_args(short, out), capsys, "validation split", "--block-size")
    assert not out.exists()


def test_impossible_hyperparameters(text_file, tmp_path, capsys):
    out = tmp_path / "run"
    run_expect_error(tiny_args(text_file, out, "--n-head", "3"), capsys,
                     "must be divisible by --n-head 3")
    assert train_gpt2.main(tiny_args(text_file, out, "--max-steps", "1")) == 0
    run_expect_error(tiny_args(text_file, tmp_path / "ft", "--init-from",
                               str(out / "latest.pt"), "--block-size", "32"),
                     capsys, "beyond the model's block_size 16")


def test_nonsense_values_and_unwritable_out_dir(text_file, tmp_path, capsys):
    for flag, value, message in [("--warmup-steps", "-5", "--warmup-steps must be >= 0"),
                                 ("--checkpoint-interval", "-1", "--checkpoint-interval must be"),
                                 ("--checkpoint-interval", "0", "--checkpoint-interval must be"),
                                 ("--grad-clip", "-1", "--grad-clip must be >= 0"),
                                 ("--beta2", "1.5", "--beta1 and --beta2 must be in [0, 1)"),
                                 ("--lr", "nan", "--lr must be a finite number"),
                                 ("--seed", "-1", "--seed must be >= 0"),
                                 ("--lr-decay-steps", "1", "make it >= --warmup-steps")]:
        run_expect_error(tiny_args(text_file, tmp_path / "run", flag, value), capsys, message)
    run_expect_error(tiny_args(text_file, tmp_path / "run", "--parallel", "fsdp", "--optimizer",
                               "muon"), capsys, "--parallel fsdp needs --optimizer adamw")
    assert not (tmp_path / "run").exists()  # refused before anything was written
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    err = run_expect_error(tiny_args(text_file, blocker / "run"), capsys,
                           f"cannot write to --out-dir {blocker / 'run'}")
    assert "could not cache token ids" in err  # the cache dir (next to it) fails softly


def test_explicit_flags_beat_model_and_model_beats_preset():
    def resolved(*argv):
        return train_gpt2.resolve_settings(train_gpt2.build_parser().parse_args(list(argv)))

    speedrun = train_gpt2.PRESETS["cpu-speedrun"]
    medium = GPT_PRESETS["medium-cpu"]
    a = resolved("--preset", "cpu-speedrun")
    assert (a.n_layer, a.n_embd, a.optimizer, a.batch_size) == (
        speedrun["n_layer"], speedrun["n_embd"], "muon", speedrun["batch_size"])
    b = resolved("--preset", "cpu-speedrun", "--model", "medium-cpu")
    assert (b.n_layer, b.n_head, b.n_embd, b.block_size) == (
        medium["n_layer"], medium["n_head"], medium["n_embd"], medium["block_size"])
    assert (b.n_layer, b.n_embd) != (speedrun["n_layer"], speedrun["n_embd"])
    assert b.optimizer == "muon" and b.max_steps == speedrun["max_steps"]  # training: preset
    c = resolved("--preset", "cpu-speedrun", "--model", "medium-cpu", "--n-layer", "2",
                 "--batch-size", "7")
    assert (c.n_layer, c.n_embd, c.batch_size) == (2, medium["n_embd"], 7)


def test_cpu_speedrun_preset_through_the_cli(text_file, tmp_path):
    # Every preset value lands in the settings when no flag is given ...
    args = train_gpt2.resolve_settings(train_gpt2.build_parser().parse_args(
        ["--preset", "cpu-speedrun"]))
    for key, value in train_gpt2.PRESETS["cpu-speedrun"].items():
        assert getattr(args, key) == value, key
    # ... and a real (one-step) run trains the preset's optimizer on --model's shape.
    out = tmp_path / "run"
    assert train_gpt2.main(["--data-file", str(text_file), "--out-dir", str(out),
                            "--cache-dir", str(tmp_path / "cache"), "--preset", "cpu-speedrun",
                            "--model", "tiny", "--block-size", "16", "--max-steps", "1",
                            "--muon-ns-steps", "3",
                            "--sample-tokens", "0", "--threads", "1", "--no-progress"]) == 0
    ckpt = torch.load(out / "latest.pt", weights_only=True)
    assert [g["ns_steps"] for g in ckpt["optimizer"]["muon"]["param_groups"]] == [3]
    tiny = GPT_PRESETS["tiny"]
    assert (ckpt["config"]["n_layer"], ckpt["config"]["n_embd"]) == (tiny["n_layer"],
                                                                     tiny["n_embd"])
    assert set(ckpt["optimizer"]) == {"muon", "adamw"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tokens_seen"] == train_gpt2.PRESETS["cpu-speedrun"]["batch_size"] * 16


def test_grad_accumulation_through_the_cli_equals_one_big_batch(text_file, tmp_path,
                                                                 monkeypatch):
    # --grad-accum-steps 2 with batch 4 must train exactly like batch 8 made of the same two
    # micro-batches (the big run's batches are patched to be those 8 sequences).
    acc = tmp_path / "acc"
    assert train_gpt2.main(tiny_args(text_file, acc, "--grad-accum-steps", "2")) == 0
    real_get_batch = data_lib.get_batch

    def two_micro_batches(ids, block, batch, seed, step, micro=0, rank=0, world=1):
        parts = [real_get_batch(ids, block, batch // 2, seed, step, m) for m in range(2)]
        return torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])

    monkeypatch.setattr(data_lib, "get_batch", two_micro_batches)
    big = tmp_path / "big"
    assert train_gpt2.main(tiny_args(text_file, big, "--batch-size", "8")) == 0
    a, b = read_log(acc), read_log(big)
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        key = "loss" if "loss" in ra else "val_loss"
        assert ra[key] == pytest.approx(rb[key], rel=1e-5), ra["step"]
    sa = json.loads((acc / "summary.json").read_text())
    sb = json.loads((big / "summary.json").read_text())
    assert sa["tokens_seen"] == sb["tokens_seen"] == 10 * 2 * 4 * 16


def test_bfloat16_autocast_runs_and_is_reported(text_file, tmp_path):
    fp32, bf16 = tmp_path / "fp32", tmp_path / "bf16"
    for out, dtype in ((fp32, "float32"), (bf16, "bfloat16")):
        assert train_gpt2.main(tiny_args(text_file, out, "--dtype", dtype, "--max-steps",
                                         "2", "--eval-interval", "2")) == 0
        assert json.loads((out / "summary.json").read_text())["dtype"] == dtype
    a, b = step_losses(fp32)[1], step_losses(bf16)[1]
    assert a != b and abs(a - b) < 0.05  # bf16 matmuls really ran: close, not identical


def test_init_from_checkpoint_loads_its_weights(text_file, tmp_path):
    src = tmp_path / "src"
    assert train_gpt2.main(tiny_args(text_file, src)) == 0
    src_val = json.loads((src / "summary.json").read_text())["last_val_loss"]
    # One step at a learning rate of ~1e-9 leaves the weights as loaded: the first
    # evaluation must give the source's last validation loss.
    out = tmp_path / "ft"
    assert train_gpt2.main(tiny_args(text_file, out, "--init-from", str(src / "latest.pt"),
                                     "--max-steps", "1", "--eval-interval", "1", "--lr",
                                     "1e-9", "--min-lr", "0")) == 0
    first_val = [r["val_loss"] for r in read_log(out) if "val_loss" in r][0]
    assert first_val == pytest.approx(src_val, rel=1e-5)
    fresh = tmp_path / "fresh"  # the same run from scratch does not give it
    assert train_gpt2.main(tiny_args(text_file, fresh, "--max-steps", "1", "--eval-interval",
                                     "1", "--lr", "1e-9", "--min-lr", "0")) == 0
    assert read_log(fresh)[-1]["val_loss"] > src_val + 0.05


def test_bad_checkpoints(text_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_gpt2.main(tiny_args(text_file, out, "--max-steps", "2")) == 0
    good = (out / "latest.pt").read_bytes()
    # mismatched: resume with another width
    run_expect_error(tiny_args(text_file, out, "--resume", "--n-embd", "32"), capsys,
                     "different model configuration", "n_embd")
    # corrupt: truncated file
    (out / "latest.pt").write_bytes(good[: len(good) // 2])
    run_expect_error(tiny_args(text_file, out, "--resume"), capsys, "corrupt")
    # foreign: a torch file that is not one of ours
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    run_expect_error(tiny_args(text_file, tmp_path / "ft", "--init-from", str(foreign)),
                     capsys, "not a checkpoint of this project")
    # missing: --resume with nothing to resume
    run_expect_error(tiny_args(text_file, tmp_path / "none", "--resume"), capsys,
                     "no checkpoint")


def test_nan_loss_stops_and_keeps_last_good_checkpoint(text_file, tmp_path, capsys,
                                                        monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setenv(train_gpt2.NAN_HOOK_ENV, "6")
    run_expect_error(tiny_args(text_file, out, "--checkpoint-interval", "2"), capsys,
                     "loss became nan at step 6", "step 4) is intact")
    ckpt = torch.load(out / "latest.pt", weights_only=True)
    assert ckpt["step"] == 4
    assert max(step_losses(out)) == 5  # the NaN step was never applied or logged
    # and the run resumes from there once the cause is gone
    monkeypatch.delenv(train_gpt2.NAN_HOOK_ENV)
    assert train_gpt2.main(tiny_args(text_file, out, "--checkpoint-interval", "2",
                                     "--resume")) == 0
    # An infinite loss is caught the same way.
    inf_out = tmp_path / "inf"
    monkeypatch.setenv(train_gpt2.NAN_HOOK_ENV, "4:inf")
    run_expect_error(tiny_args(text_file, inf_out, "--checkpoint-interval", "2"), capsys,
                     "loss became inf at step 4", "step 2) is intact")
    assert torch.load(inf_out / "latest.pt", weights_only=True)["step"] == 2


def test_failed_save_leaves_previous_checkpoint_intact(text_file, tmp_path, capsys,
                                                       monkeypatch):
    out = tmp_path / "run"
    real_save = torch.save
    calls = {"n": 0}

    def flaky_save(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= 2:  # the second save writes half its bytes, then the disk "fills"
            f.write(b"PK\x03\x04 partial")
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", flaky_save)
    run_expect_error(tiny_args(text_file, out, "--checkpoint-interval", "3",
                               "--eval-interval", "100"),
                     capsys, "could not save checkpoint", "left intact")
    monkeypatch.setattr(torch, "save", real_save)
    ckpt = torch.load(out / "latest.pt", weights_only=True)
    assert ckpt["step"] == 3
    assert not list(out.glob(".*.tmp"))


def test_init_from_hugging_face_directory(text_file, tmp_path):
    # A tiny GPT with GPT-2's vocabulary, exported in Hugging Face's format, is the start point;
    # the first logged loss must be that model's loss on the run's first batch.
    torch.manual_seed(0)
    pre = GPT(GPTConfig(vocab_size=50257, block_size=32, n_layer=1, n_head=2, n_embd=16))
    hf_dir = tmp_path / "hf"
    pre.save_pretrained(hf_dir)
    out = tmp_path / "ft"
    args = tiny_args(text_file, out, "--init-from", str(hf_dir), "--max-steps", "2",
                     "--eval-interval", "2")
    assert train_gpt2.main(args) == 0
    tok = import_module("sprints.08_gpt2_assembly.results.tokenizer").get_tokenizer("gpt2")
    text = text_file.read_text()
    ids = np.asarray(tok.encode(text[: int(len(text) * 0.9)]), dtype=np.uint16)
    x, y = data_lib.get_batch(ids, 16, 4, seed=1337, step=0)
    with torch.no_grad():
        _, expected = pre(x, y)
    assert step_losses(out)[1] == pytest.approx(expected.item(), rel=1e-4)
    assert torch.load(out / "latest.pt", weights_only=True)["config"]["vocab_size"] == 50257


# ----- training from prepared shards (--data-dir) ----------------------------------------------
prepare_data = import_module(f"{T9}.prepare_data")


def prepare_shards(text_file: Path, out: Path, *extra: str) -> Path:
    # char ids, shards of 2,000 tokens; the first shard is the validation split
    assert prepare_data.main(["--input", str(text_file), "--out-dir", str(out), "--tokenizer",
                              "char", "--shard-tokens", "2000", "--val-shards", "1",
                              "--no-progress", *extra]) == 0
    return out


def shard_ids(directory: Path, split: str) -> np.ndarray:
    """The split's ids read back with NumPy alone, from the manifest's file list."""
    manifest = json.loads((directory / "manifest.json").read_text())
    files = [s["file"] for s in manifest["shards"] if s["split"] == split]
    return np.concatenate([np.fromfile(directory / f, dtype=np.uint16) for f in files])


def dir_args(data_dir, out_dir, *extra) -> list[str]:
    args = tiny_args("unused", out_dir, *extra)
    i = args.index("--data-file")
    return args[:i] + ["--data-dir", str(data_dir)] + args[i + 2:]


def test_training_from_prepared_shards_first_loss_eval_tokens_and_resume(text_file, tmp_path):
    shards = prepare_shards(text_file, tmp_path / "shards")
    out = tmp_path / "run"
    assert train_gpt2.main(dir_args(shards, out, "--max-steps", "6", "--eval-interval", "3",
                                    "--eval-tokens", "500", "--lr-decay-steps", "10")) == 0
    # The first loss is the fresh model's loss on get_batch over the shards' ids (read here
    # with np.fromfile); the character vocabulary is the manifest's.
    manifest = json.loads((shards / "manifest.json").read_text())
    ckpt = torch.load(out / "latest.pt", weights_only=True)
    assert ckpt["extra"]["tokenizer"]["chars"] == manifest["tokenizer"]["chars"]
    torch.manual_seed(1337)
    fresh = GPT(GPTConfig(**ckpt["config"]))
    x, y = data_lib.get_batch(shard_ids(shards, "train"), 16, 4, seed=1337, step=0)
    with torch.no_grad():
        _, first = fresh(x, y)
    assert step_losses(out)[1] == pytest.approx(first.item(), rel=1e-5)
    # --eval-tokens 500: the mean loss over the first 500 predictions of the validation ids.
    model = GPT(GPTConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    val = torch.from_numpy(shard_ids(shards, "val")[:501].astype(np.int64))
    with torch.no_grad():
        logits = torch.cat([model(val[i:i + 16][None])[0][0] for i in range(0, 500, 16)])
    expected = F.cross_entropy(logits[:500], val[1:501]).item()
    assert read_log(out)[-1]["val_loss"] == pytest.approx(expected, rel=1e-5)
    # Resuming from step 6 to 10 follows an uninterrupted 10-step run.
    assert train_gpt2.main(dir_args(shards, out, "--max-steps", "10", "--eval-interval", "3",
                                    "--eval-tokens", "500", "--lr-decay-steps", "10",
                                    "--resume")) == 0
    full = tmp_path / "full"
    assert train_gpt2.main(dir_args(shards, full, "--max-steps", "10", "--eval-interval", "3",
                                    "--eval-tokens", "500", "--lr-decay-steps", "10")) == 0
    a, b = step_losses(full), step_losses(out)
    assert sorted(b) == list(range(1, 11))
    for s in range(7, 11):
        assert b[s] == pytest.approx(a[s], rel=1e-6), s


def test_prepared_directory_errors_come_before_training(text_file, tmp_path, capsys):
    shards = prepare_shards(text_file, tmp_path / "shards")
    out = tmp_path / "run"
    run_expect_error(dir_args(tmp_path, out), capsys, "has no manifest.json", "prepare_data")
    run_expect_error(dir_args(shards, out, "--tokenizer", "gpt2"), capsys,
                     "prepared with the char tokenizer", "--tokenizer char")
    args = dir_args(shards, out) + ["--data-file", str(text_file)]
    run_expect_error(args, capsys, "--data-dir and --data-file")
    victim = shards / json.loads((shards / "manifest.json").read_text())["shards"][-1]["file"]
    victim.write_bytes(victim.read_bytes()[:-2])  # one token short
    run_expect_error(dir_args(shards, out), capsys, "truncated")
    assert not out.exists()  # nothing was written: the checks ran before training
