"""Run the exercise checks of one sprint, several sprints, or all of them.

    uv run python -m sprints.check 06            # sprint 6's exercises, your files
    uv run python -m sprints.check 01 06         # two sprints
    uv run python -m sprints.check --all         # every sprint
    uv run python -m sprints.check 06 --solutions   # the reference solutions instead

Each sprint keeps its checks in ``sprints/NN_*/exercises/checks.py``: a list ``CHECKS`` of
functions named ``check_<exercise file>``, each taking the module under test (your
``exercises/<exercise file>.py`` or ``exercises/solutions/<exercise file>.py``). A check raises
AssertionError with a plain-words message at the first case that goes wrong; the helpers below
(``expect_close``, ``expect_equal``, ``expect_raises``) write those messages.

The last line printed is the progress line, e.g. ``sprint 06: 2/4 exercises pass; all sprints:
9/41``. The exit code is 0 only when every selected check passes.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

SPRINTS_DIR = Path(__file__).resolve().parent


# ----- helpers the checks use -----------------------------------------------------------------

def describe(value: Any) -> str:
    """A short plain description: small tensors in full, large ones by shape and a few values."""
    if isinstance(value, torch.Tensor):
        shape = tuple(value.shape)
        if value.numel() <= 12:
            return f"tensor {_round(value.tolist())} (shape {shape}, {value.dtype})"
        flat = value.detach().flatten()[:4].tolist()
        return f"a tensor of shape {shape} ({value.dtype}) starting {_round(flat)} ..."
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value)


def _round(values: Any) -> Any:
    if isinstance(values, list):
        return [_round(v) for v in values]
    if isinstance(values, float):
        return round(values, 4)
    return values


def expect_close(call: str, got: Any, expected: Any, atol: float = 1e-5,
                 rtol: float = 1e-4) -> None:
    """Fail unless ``got`` is a tensor (or number) of the expected shape and close in value."""
    if isinstance(expected, (int, float)):
        if not isinstance(got, (int, float, torch.Tensor)) or (
            isinstance(got, torch.Tensor) and got.numel() != 1
        ):
            raise AssertionError(f"{call}: expected the number {expected:.6g}, got {describe(got)}")
        got_value = float(got)
        if abs(got_value - expected) > atol + rtol * abs(expected):
            raise AssertionError(f"{call}: expected {expected:.6g}, got {got_value:.6g}")
        return
    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"{call}: expected {describe(expected)}, got {describe(got)}")
    if got.shape != expected.shape:
        raise AssertionError(
            f"{call}: expected shape {tuple(expected.shape)}, got shape {tuple(got.shape)}")
    got_f, exp_f = got.detach().double(), expected.detach().double()
    same_inf = torch.isinf(exp_f) & (got_f == exp_f)
    diff = torch.where(same_inf, torch.zeros_like(exp_f), (got_f - exp_f).abs())
    diff = torch.nan_to_num(diff, nan=float("inf"))
    bad = diff > atol + rtol * torch.nan_to_num(exp_f.abs(), posinf=0.0)
    if bad.any():
        where = tuple(int(i) for i in bad.nonzero()[0])
        raise AssertionError(
            f"{call}: expected {describe(expected)}, got {describe(got)}; first difference at "
            f"index {where}: expected {exp_f[where].item():.6g}, got {got_f[where].item():.6g}")


def expect_equal(call: str, got: Any, expected: Any) -> None:
    """Fail unless ``got == expected`` (ints, tuples, bools, strings; tensors elementwise)."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor) or got.shape != expected.shape or not torch.equal(
            got, expected
        ):
            raise AssertionError(f"{call}: expected {describe(expected)}, got {describe(got)}")
        return
    if isinstance(got, torch.Size):
        got = tuple(got)
    if got != expected or type(got) is bool and type(expected) is not bool:
        raise AssertionError(f"{call}: expected {describe(expected)}, got {describe(got)}")


def expect_raises(call: str, error: type[BaseException], fn, *args: Any, **kwargs: Any) -> None:
    """Fail unless ``fn(*args, **kwargs)`` raises ``error``."""
    try:
        result = fn(*args, **kwargs)
    except error:
        return
    raise AssertionError(f"{call}: expected a {error.__name__}, but it returned {describe(result)}")


# ----- discovery and running ------------------------------------------------------------------

@dataclass
class Outcome:
    exercise: str
    passed: bool
    message: str


def sprint_dirs() -> list[Path]:
    """Sprint folders that have exercises, in order."""
    return sorted(p.parent.parent for p in SPRINTS_DIR.glob("[0-9][0-9]_*/exercises/checks.py"))


def find_sprint(name: str) -> Path:
    """'6', '06' or '06_multi_head_attention' -> the sprint folder."""
    for path in sprint_dirs():
        number = path.name.split("_", 1)[0]
        if name in (path.name, number) or (name.isdigit() and int(name) == int(number)):
            return path
    known = ", ".join(p.name.split("_", 1)[0] for p in sprint_dirs())
    raise SystemExit(f"no sprint with exercises called {name!r}; choose one of {known}")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "(no message)"


def _where(error: BaseException) -> str:
    """The last frame of the traceback, as 'file.py line N'."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f" (at {Path(last.filename).name} line {last.lineno})"


def run_check(check, module: ModuleType) -> tuple[bool, str]:
    """Run one check; (passed, what to print)."""
    torch.manual_seed(0)
    try:
        check(module)
    except NotImplementedError as error:
        return False, f"not started ({_first_line(error)})"
    except AssertionError as error:
        return False, f"FAIL: {error}"
    except Exception as error:  # the learner's code crashed: say how and where
        return False, f"FAIL: {type(error).__name__}: {_first_line(error)}{_where(error)}"
    return True, "PASS"


def run_sprint(sprint: Path, solutions: bool) -> list[Outcome]:
    package = f"sprints.{sprint.name}.exercises"
    checks = import_module(f"{package}.checks").CHECKS
    outcomes = []
    for check in checks:
        exercise = check.__name__.removeprefix("check_")
        target = f"{package}.solutions.{exercise}" if solutions else f"{package}.{exercise}"
        try:
            module = import_module(target)
        except Exception as error:
            outcomes.append(Outcome(exercise, False, f"FAIL: cannot import {target}: "
                                    f"{type(error).__name__}: {_first_line(error)}"))
            continue
        passed, message = run_check(check, module)
        outcomes.append(Outcome(exercise, passed, message))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sprints.check",
        description="Check your answers to the sprint exercises (sprints/NN_*/exercises/).",
        epilog="Example: uv run python -m sprints.check 06",
    )
    parser.add_argument("sprints", nargs="*", metavar="SPRINT",
                        help="sprint numbers such as 06 (or 6, or 06_multi_head_attention)")
    parser.add_argument("--all", action="store_true", help="check every sprint")
    parser.add_argument("--solutions", action="store_true",
                        help="run the checks against exercises/solutions/ instead of your files")
    args = parser.parse_args(argv)
    if not args.sprints and not args.all:
        parser.error("name a sprint (for example 06) or pass --all")

    every = sprint_dirs()
    selected = every if args.all else list(dict.fromkeys(find_sprint(s) for s in args.sprints))
    results = {}
    for sprint in every:  # every sprint runs, so the progress line can count them all
        results[sprint] = run_sprint(sprint, args.solutions)

    which = "reference solutions" if args.solutions else "your files"
    summaries = []
    for sprint in selected:
        outcomes = results[sprint]
        print(f"{sprint.name} ({which}):")
        for outcome in outcomes:
            print(f"  {outcome.exercise}: {outcome.message}")
        passed = sum(o.passed for o in outcomes)
        summaries.append(f"sprint {sprint.name[:2]}: {passed}/{len(outcomes)} exercises pass")
    total = sum(len(o) for o in results.values())
    total_passed = sum(o.passed for outcomes in results.values() for o in outcomes)
    line = f"all sprints: {total_passed}/{total}"
    print("; ".join([*summaries, line]) if not args.all else f"{line} exercises pass")
    return 0 if all(o.passed for s in selected for o in results[s]) else 1


if __name__ == "__main__":
    sys.exit(main())
