"""Instruction data: download once, read and check, split 85/5/10, encode, batch (the collate).

An example is a dict ``{"instruction": ..., "input": ..., "output": ...}`` (``input`` may be
empty or absent), as in LLMs-from-scratch ch. 7 and the Alpaca data. A batch is built in
three moves, shown here on two encoded examples (P = prompt token, R = response token,
E = the response's closing <|endoftext|>, which is trained: the model must learn to stop):

    ids      P P R R E          P R E            (different lengths)
    pad      P P R R E          P R E E E        right padding with the <|endoftext|> id
    inputs   P P R R            P R E E          ids[:-1]: what the model reads
    targets  - R R E            R E - -          ids[1:], with -100 where the next token is
                                                 prompt or padding (- = -100)

The GPT is causal, so right padding needs no attention mask: position t only sees positions
<= t, and every padding position comes after the last real token; its targets are -100, so
it adds nothing to the loss either.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import Any, NamedTuple

import torch

from . import prompts

_data = import_module("sprints.09_train_gpt2.results.data")
DataError = _data.DataError

INSTRUCTION_DATA_URL = ("https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch07/"
                        "01_main-chapter-code/instruction-data.json")
DEFAULT_DATA_FILE = Path("data") / "instruction_data" / "instruction-data.json"
IGNORE_INDEX = -100  # what F.cross_entropy (and sprint 9's chunked loss) skip
SPLITS = ("train", "val", "test")
REQUIRED_KEYS = ("instruction", "output")


# ----- reading -----------------------------------------------------------------------------
def download(url: str = INSTRUCTION_DATA_URL, dest: str | Path = DEFAULT_DATA_FILE,
             **options: Any) -> Path:
    """Sprint 9's download (once, atomic, retries) of the 1,100-example JSON file;
    ``options``: its timeout, retries and backoff_s."""
    return _data.download(url, dest, offline_hint=(
        "pass a local JSON file (a list of {\"instruction\", \"input\", \"output\"} objects) "
        "with --data-file PATH"), **options)


def check_examples(examples: Any, source: str = "data") -> list[dict[str, str]]:
    """The examples as a list of {instruction, input, output} strings, or a DataError that
    names the first bad entry and what it lacks."""
    if not isinstance(examples, list):
        raise DataError(f"{source} holds a JSON {type(examples).__name__}, not a list; give a "
                        "list of {\"instruction\", \"input\", \"output\"} objects")
    if not examples:
        raise DataError(f"{source} holds an empty list; it needs at least 3 examples "
                        "(one each for training, validation and test)")
    checked = []
    for i, entry in enumerate(examples):
        if not isinstance(entry, dict):
            raise DataError(f"{source}: entry {i} is a {type(entry).__name__}, not an object "
                            "with \"instruction\", \"input\" and \"output\"")
        missing = [k for k in REQUIRED_KEYS if k not in entry]
        if missing:
            raise DataError(f"{source}: entry {i} has no {' and no '.join(map(repr, missing))} "
                            f"(its keys: {sorted(entry)}); every entry needs \"instruction\" "
                            "and \"output\" (\"input\" may be empty)")
        entry = {"instruction": entry["instruction"], "input": entry.get("input") or "",
                 "output": entry["output"]}
        wrong = [k for k, v in entry.items() if not isinstance(v, str)]
        if wrong:
            raise DataError(f"{source}: entry {i} has non-text {wrong[0]!r} "
                            f"({type(entry[wrong[0]]).__name__}); the values must be strings")
        checked.append(entry)
    return checked


def read_examples(path: str | Path) -> list[dict[str, str]]:
    """Read and check a JSON list of examples."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist; pass an existing JSON file with "
                        "--data-file PATH (or leave it out to download the 1,100 examples)")
    try:
        examples = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise DataError(f"data file {path} is not UTF-8 text ({error.reason}); convert it "
                        "or pass another --data-file") from None
    except json.JSONDecodeError as error:
        raise DataError(f"data file {path} is not valid JSON (line {error.lineno}, column "
                        f"{error.colno}: {error.msg}); fix it or pass another --data-file"
                        ) from None
    return check_examples(examples, str(path))


def split_examples(examples: Sequence[dict], train_fraction: float = 0.85,
                   test_fraction: float = 0.10) -> dict[str, list[dict]]:
    """Train / val / test in the file's order, as LLMs-from-scratch ch. 7: the first 85% for
    training, the next 10% for test, the remaining 5% for validation (1,100 -> 935 / 55 / 110).
    A fixed order, so every run (and every resume) sees the same split. Small sets still get
    one validation and one test example, taken from the training part."""
    n = len(examples)
    if n < 3:
        raise DataError(f"{n} example(s) is too few: the split needs at least 3 (one each for "
                        "training, validation and test)")
    n_train, n_test = int(n * train_fraction), int(n * test_fraction)
    n_test = max(n_test, 1)
    n_train = min(n_train, n - n_test - 1)  # leaves at least one for validation
    train = list(examples[:n_train])
    test = list(examples[n_train:n_train + n_test])
    val = list(examples[n_train + n_test:])
    return {"train": train, "val": val, "test": test}


def write_splits(splits: dict[str, list[dict]], out_dir: Path) -> dict[str, str]:
    """Each split as ``out_dir/<name>.json`` (atomic), so a run's data can be inspected."""
    atomic_write = import_module("sprints.08_gpt2_assembly.results.utils").atomic_write
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, rows in splits.items():
        text = json.dumps(rows, indent=1, ensure_ascii=False) + "\n"
        written[name] = str(atomic_write(out_dir / f"{name}.json",
                                         lambda tmp, t=text: Path(tmp).write_text(t, "utf-8")))
    return written


# ----- encoding and batching ---------------------------------------------------------------
class Encoded(NamedTuple):
    ids: list[int]
    trained: list[bool]  # per token: does the loss predict it (response + closing EOT)


def encode_examples(tokenizer, examples: Sequence[dict], fmt: str, max_length: int
                    ) -> tuple[list[Encoded], dict[str, int]]:
    """prompts.encode_example for each example, cut to ``max_length + 1`` tokens (inputs and
    targets are then at most ``max_length`` long: the shift takes one off each). Returns the
    encoded examples and counts: how many were cut, and how many were dropped because the
    prompt alone fills the window (nothing left to train on)."""
    encoded, cut, dropped = [], 0, 0
    for entry in examples:
        ids, trained = prompts.encode_example(tokenizer, entry, fmt)
        if len(ids) > max_length + 1:
            ids, trained = ids[:max_length + 1], trained[:max_length + 1]
            cut += 1
        if not any(trained[1:]):  # trained[0] is never a target
            dropped += 1
            continue
        encoded.append(Encoded(ids, trained))
    return encoded, {"truncated": cut, "dropped": dropped}


class Batch(NamedTuple):
    inputs: torch.Tensor  # (B, T) token ids the model reads
    targets: torch.Tensor  # (B, T) next-token ids, IGNORE_INDEX on prompt and padding
    mask: torch.Tensor  # (B, T) bool: targets != IGNORE_INDEX, the positions the loss counts


def collate(examples: Sequence[Encoded], pad_id: int) -> Batch:
    """Pad to the longest example of the batch (right padding with ``pad_id``, the
    <|endoftext|> id), shift by one, and mask prompt and padding targets with -100."""
    longest = max(len(e.ids) for e in examples)
    ids = torch.full((len(examples), longest), pad_id, dtype=torch.long)
    trained = torch.zeros((len(examples), longest), dtype=torch.bool)  # padding: False
    for row, e in enumerate(examples):
        ids[row, :len(e.ids)] = torch.tensor(e.ids, dtype=torch.long)
        trained[row, :len(e.trained)] = torch.tensor(e.trained, dtype=torch.bool)
    inputs, next_ids, mask = ids[:, :-1], ids[:, 1:], trained[:, 1:]  # (B, L) -> (B, L-1)
    targets = torch.where(mask, next_ids, torch.full_like(next_ids, IGNORE_INDEX))
    return Batch(inputs.contiguous(), targets, mask)


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The order of the training examples in ``epoch``: a permutation that depends only on
    (seed, epoch), so a resumed run recomputes it instead of saving it."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=generator).tolist()


def steps_per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)  # the last batch of an epoch may be smaller


def batch_at(examples: Sequence[Encoded], batch_size: int, seed: int, step: int,
             pad_id: int) -> Batch:
    """The training batch of optimizer step ``step`` (0-based), a pure function of it."""
    per_epoch = steps_per_epoch(len(examples), batch_size)
    epoch, i = divmod(step, per_epoch)
    chosen = epoch_order(len(examples), seed, epoch)[i * batch_size:(i + 1) * batch_size]
    return collate([examples[j] for j in chosen], pad_id)
