"""Where a train_gpt2 run reports: TensorBoard, ``train_log.jsonl``, a tqdm bar and the terminal.

Only rank 0 writes; the other ranks get a RunLog whose methods do nothing, so the training loop
calls it the same way on every process.
"""

from __future__ import annotations

import json
import math
from pathlib import Path


class RunLog:
    def __init__(self, out_dir: Path, enabled: bool, start_step: int, resumed: bool,
                 total_steps: int, progress_bar: bool):
        self.enabled = enabled
        self.writer = self.file = self.bar = None
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter

        log_path = out_dir / "train_log.jsonl"
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            # purge_step drops events a killed run wrote after its last checkpoint.
            self.writer = SummaryWriter(str(out_dir / "tensorboard"),
                                        purge_step=start_step + 1 if resumed else None)
            if resumed and log_path.exists():  # the same: lines after the checkpoint go
                kept = [ln for ln in log_path.read_text().splitlines()
                        if ln.strip() and json.loads(ln).get("step", 0) <= start_step]
                log_path.write_text("".join(k + "\n" for k in kept))
            elif not resumed:
                log_path.write_text("")
            self.file = open(log_path, "a")  # noqa: SIM115 (kept open for the whole run)
        except OSError as error:
            self.close()
            raise ValueError(f"cannot write to --out-dir {out_dir} ({error}); pass a "
                             "directory this user can create and write") from None
        if progress_bar:
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, desc="train",
                            dynamic_ncols=True)

    def print(self, message: str) -> None:
        if self.enabled:
            (self.bar.write if self.bar is not None else print)(message)

    def step(self, step: int, loss: float, lr: float, grad_norm: float, tokens_per_s: float,
             time_s: float) -> None:
        if not self.enabled:
            return
        self.file.write(json.dumps({"step": step, "loss": loss, "lr": lr, "grad_norm": grad_norm,
                                    "tokens_per_s": tokens_per_s, "time_s": time_s}) + "\n")
        for name, value in (("loss", loss), ("lr", lr), ("grad_norm", grad_norm),
                            ("tokens_per_s", tokens_per_s)):
            self.writer.add_scalar(f"train/{name}", value, step)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}",
                                 tok_s=f"{tokens_per_s:,.0f}", refresh=False)

    def evaluation(self, step: int, val_loss: float, time_s: float,
                   sample: str | None = None) -> None:
        if not self.enabled:
            return
        ppl = math.exp(min(val_loss, 50.0))  # capped: exp overflows for a diverged loss
        self.writer.add_scalar("val/loss", val_loss, step)
        self.writer.add_scalar("val/perplexity", ppl, step)
        self.file.write(json.dumps({"step": step, "val_loss": val_loss, "val_perplexity": ppl,
                                    "time_s": time_s}) + "\n")
        message = (f"step {step}: val loss {val_loss:.4f}, perplexity {ppl:.2f}, "
                   f"{time_s:.1f} s since start")
        if sample is not None:
            message += "\n--- sample ---\n" + sample + "\n--------------"
            self.writer.add_text("val/sample", sample, step)
        self.print(message)

    def scalars(self, step: int, values: dict[str, float], time_s: float) -> None:
        """Other measurements (HellaSwag, ...): TensorBoard tags and one JSONL line."""
        if not self.enabled:
            return
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        self.file.write(json.dumps({"step": step, **values, "time_s": time_s}) + "\n")

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
        if self.file is not None:
            self.file.close()
        self.writer = self.file = self.bar = None
