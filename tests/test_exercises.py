"""The exercise checks (sprints/NN_*/exercises/checks.py) and their runner, sprints/check.py.

- every check passes on the reference solutions in exercises/solutions/;
- every check fails on the untouched starter files, and says "not started" with the hint, so
  no check can pass without calling the learner's code;
- a wrong answer is reported with its input, the expected value and what came back;
- the command line prints per-exercise results and the progress line, and its exit code says
  whether every selected check passed.
"""

from importlib import import_module
from types import SimpleNamespace

import pytest
import torch

from sprints import check as runner


def _all_checks():
    cases = []
    for sprint in runner.sprint_dirs():
        for fn in import_module(f"sprints.{sprint.name}.exercises.checks").CHECKS:
            cases.append(pytest.param(sprint.name, fn, id=f"{sprint.name[:2]}-{fn.__name__}"))
    return cases


CASES = _all_checks()


def _module(sprint: str, check, solutions: bool):
    exercise = check.__name__.removeprefix("check_")
    where = "exercises.solutions" if solutions else "exercises"
    return import_module(f"sprints.{sprint}.{where}.{exercise}")


def test_every_sprint_has_three_to_six_exercises_with_a_readme_and_solutions():
    sprints = runner.sprint_dirs()
    assert [p.name[:2] for p in sprints][:10] == [f"{n:02d}" for n in range(1, 11)]
    for sprint in sprints:
        checks = import_module(f"sprints.{sprint.name}.exercises.checks").CHECKS
        assert 3 <= len(checks) <= 6, sprint.name
        readme = (sprint / "exercises" / "README.md").read_text(encoding="utf-8")
        for fn in checks:
            name = fn.__name__.removeprefix("check_")
            assert f"({name}.py)" in readme, f"{sprint.name}: README does not link {name}.py"
            solution = sprint / "exercises" / "solutions" / f"{name}.py"
            # Solutions stand alone: short, and nothing from the sprint's results/ code.
            assert "results" not in solution.read_text(encoding="utf-8"), solution


@pytest.mark.parametrize(("sprint", "check"), CASES)
def test_check_passes_on_the_solution(sprint, check):
    passed, message = runner.run_check(check, _module(sprint, check, solutions=True))
    assert passed, message


@pytest.mark.parametrize(("sprint", "check"), CASES)
def test_check_fails_on_the_starter_and_shows_the_hint(sprint, check):
    passed, message = runner.run_check(check, _module(sprint, check, solutions=False))
    assert not passed
    assert message.startswith("not started (hint: "), message


def test_a_wrong_answer_names_the_input_the_expected_value_and_what_came_back():
    checks = import_module("sprints.06_multi_head_attention.exercises.checks")
    upper = SimpleNamespace(causal_mask=lambda t: torch.ones(t, t, dtype=torch.bool).triu())
    passed, message = runner.run_check(checks.check_ex01_causal_mask, upper)
    assert not passed
    assert message.startswith("FAIL: causal_mask(2): expected tensor [[True, False], [True, True]]")
    assert "got tensor [[True, True], [False, True]]" in message

    crashing = SimpleNamespace(causal_mask=lambda t: torch.ones(t, t) @ torch.ones(t + 1))
    passed, message = runner.run_check(checks.check_ex01_causal_mask, crashing)
    assert not passed and message.startswith("FAIL: RuntimeError:"), message


def test_cli_prints_each_exercise_and_the_progress_line(capsys):
    total = len(CASES)
    n06 = sum(1 for sprint, *_ in (c.values for c in CASES) if sprint.startswith("06"))
    assert runner.main(["06"]) == 1  # the starters are untouched
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "06_multi_head_attention (your files):"
    assert lines[1].startswith("  ex01_causal_mask: not started (hint: ")
    assert lines[-1] == f"sprint 06: 0/{n06} exercises pass; all sprints: 0/{total}"

    assert runner.main(["6", "--solutions"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        f"sprint 06: {n06}/{n06} exercises pass; all sprints: {total}/{total}")

    assert runner.main(["--all", "--solutions"]) == 0
    out = capsys.readouterr().out
    assert out.count(": PASS") == total
    assert out.strip().splitlines()[-1] == f"all sprints: {total}/{total} exercises pass"


def test_cli_help_and_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        runner.main(["--help"])
    assert exit_info.value.code == 0
    assert "--solutions" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        runner.main([])  # neither a sprint nor --all
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit, match="no sprint with exercises called '42'"):
        runner.main(["42"])
