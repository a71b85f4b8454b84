"""Text messages for a language model to read before it learns to classify them.

A model pretrained on Shakespeare has never seen "txt", "FREE" or a phone number. Before the
classifier is trained, a few hundred more language-model steps on text messages teach it
what they look like (ULMFiT's recipe: general text, then the task's own text, then the
labels). No label is used, and the messages classify.py will validate and test on are left
out, so nothing the classifier is scored on is read:

    uv run python -m sprints.12_task_finetuning.results.sms_lm_text \\
        --data-file path/to/SMSSpamCollection --out-dir runs/sms_lm_text
    uv run python -m sprints.09_train_gpt2.results.train_gpt2 \\
        --init-from runs/shakespeare_gpt2_small/best.pt \\
        --data-file runs/sms_lm_text/sms_unlabeled.txt --block-size 128 --batch-size 8 \\
        --lr 3e-4 --min-lr 3e-5 --warmup-steps 20 --max-steps 400 --eval-interval 50 \\
        --out-dir runs/sms_lm
    uv run python -m sprints.12_task_finetuning.results.classify \\
        --data-file path/to/SMSSpamCollection --init-from runs/sms_lm/best.pt \\
        --trainable all --lr 5e-5 --dropout 0.1 --epochs 5

The split is the one classify.py makes with the same ``--seed`` (a pure function of the
file and the seed). Written: ``sms_unlabeled.txt``, one message per line, in file order.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module
from pathlib import Path

sms_data = import_module("sprints.12_task_finetuning.results.sms_data")
classify = import_module("sprints.12_task_finetuning.results.classify")
_utils = import_module("sprints.08_gpt2_assembly.results.utils")
_arg_types = import_module("sprints.01_setup_and_basics.results.arg_types")

FILE_NAME = "sms_unlabeled.txt"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-file", type=Path, default=None,
                   help="the SMS Spam Collection (label<TAB>text lines); default: download it")
    p.add_argument("--data-url", default=sms_data.SMS_SPAM_URL, help="where to download from")
    p.add_argument("--download-dir", type=Path, default=sms_data.DEFAULT_DOWNLOAD_DIR)
    p.add_argument("--seed", type=_arg_types.non_negative_int, default=123,
                   help="the split's seed: the same as classify.py's --seed")
    p.add_argument("--out-dir", type=Path, default=Path("runs") / "sms_lm_text")
    return p


def write_lm_text(rows: list[tuple[str, str]], seed: int, out_dir: Path) -> tuple[Path, int]:
    """Write the unlabeled texts of the split ``seed`` makes; (the file, messages written)."""
    texts = sms_data.unlabeled_texts(rows, sms_data.balanced_split(rows, seed))
    out_dir.mkdir(parents=True, exist_ok=True)
    content = "\n".join(texts) + "\n"
    path = _utils.atomic_write(out_dir / FILE_NAME,
                               lambda tmp: Path(tmp).write_text(content, encoding="utf-8"))
    return path, len(texts)


def main(argv: list[str] | None = None) -> Path:
    args = build_parser().parse_args(argv)
    try:
        rows = classify.load_data(args)  # downloads when --data-file is left out
        path, n = write_lm_text(rows, args.seed, args.out_dir)
    except (sms_data.DataError, OSError) as error:  # no file, offline, unreadable, too few
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"wrote {n:,} of {len(rows):,} messages to {path} (validation and test messages "
          f"of split seed {args.seed} left out, labels dropped)")
    return path


if __name__ == "__main__":
    main()
