"""Checks that keep the whole repository honest; they grow as sprints land.

- every script under ``sprints/*/results/`` answers ``--help`` and exits 0;
- every relative link in every Markdown file resolves;
- every ``python -m <module>`` written in a Markdown file names a module that exists.
"""

import importlib.util
import re
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tracked_markdown() -> list[Path]:
    skip = {".venv", "data", ".git", "node_modules", ".pytest_cache"}
    return sorted(
        p for p in ROOT.rglob("*.md") if not (set(p.relative_to(ROOT).parts) & skip)
    )


def _result_scripts() -> list[str]:
    modules = []
    for path in sorted(ROOT.glob("sprints/*/results/*.py")):
        if path.name == "__init__.py":
            continue
        modules.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    for path in sorted(ROOT.glob("benchmarks/*.py")):
        if path.name != "__init__.py":
            modules.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return modules


def _is_script(module: str) -> bool:
    source = (ROOT / Path(*module.split("."))).with_suffix(".py").read_text(encoding="utf-8")
    return 'if __name__ == "__main__"' in source


@pytest.mark.parametrize("module", [m for m in _result_scripts() if _is_script(m)])
def test_script_help_exits_zero(module, monkeypatch, capsys):
    # Run in-process (as ``python -m module --help`` would) to avoid paying torch's import
    # time once per script; argparse prints the usage and raises SystemExit(0).
    monkeypatch.setattr(sys, "argv", [module, "--help"])
    # A module another test already imported would be executed a second time under
    # __main__; drop the cached copy so runpy starts from a clean slate, as `python -m` does.
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    assert exit_info.value.code in (0, None)
    assert "usage" in capsys.readouterr().out.lower()


def test_every_results_script_has_a_main_guard():
    # Modules that others import may have no CLI, but numbered demos are scripts by definition.
    for path in ROOT.glob("sprints/*/results/[0-9]*.py"):
        assert 'if __name__ == "__main__"' in path.read_text(encoding="utf-8"), path


LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("md", _tracked_markdown(), ids=lambda p: str(p.relative_to(ROOT)))
def test_markdown_links_resolve(md):
    text = re.sub(r"```.*?```", "", md.read_text(encoding="utf-8"), flags=re.S)
    broken = []
    for match in LINK.finditer(text):
        target = match.group(1) or match.group(2)
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # web addresses and in-page anchors
        path = (md.parent / target.split("#")[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert not broken, f"{md.relative_to(ROOT)} links to missing files: {broken}"


COMMAND = re.compile(r"python3? -m ((?:sprints|benchmarks)\.[\w.]+)")


@pytest.mark.parametrize("md", _tracked_markdown(), ids=lambda p: str(p.relative_to(ROOT)))
def test_markdown_commands_name_real_modules(md):
    missing = [
        name
        for name in COMMAND.findall(md.read_text(encoding="utf-8"))
        if importlib.util.find_spec(name.rstrip(".")) is None
    ]
    assert not missing, f"{md.relative_to(ROOT)} runs modules that do not exist: {missing}"


# ----- speed figures name their machine ------------------------------------------------------
# Speed depends on the CPU (a Xeon with AMX and an AMD EPYC without it differ by 2x on the same
# command), so a speed figure is only true together with the machine that gave it. A "speed
# figure" is a number with a unit of throughput or duration (tokens/s, GB/s, ms per step, 37 s,
# 2 minutes) or a speed ratio (1.9x faster). The machine is named in the project's form:
# "2-core AMD EPYC (AVX-512 yes, AVX-512 BF16 yes, AMX no)" (what `python -m
# sprints.01_setup_and_basics.results.devices` prints), or a GPU by name. It must stand in
# the figure's own paragraph/table, or earlier in the same section (under the same heading).
_RATE = (r"(?:tok(?:ens)?/s|tokens per second|it/s|steps?/s|ms/step|ms per step|ms / step|"
         r"s/epoch|s per epoch|[TGM]FLOP/s|[GMK]B/s|samples/s|images/s|digits/s)")
_DURATION = r"(?:ms|s|sec|seconds|min|minutes|hours)"
SPEED_FIGURE = re.compile(
    rf"(?<![\w.])\d[\d,]*(?:\.\d+)?(?:\s?{_RATE}|\s{_DURATION}\b|ms\b)"
    r"|(?<![\w.])\d+(?:\.\d+)?x (?:faster|slower|as fast)")
MACHINE = re.compile(r"\b\d+-core [^\n()]*\((?=[^()]*AVX-512\s+(?:yes|no))"
                     r"(?=[^()]*AMX\s+(?:yes|no))[^()]*\)"
                     r"|\b(?:NVIDIA|A100|H100|H200|V100|RTX ?\d{3,4}|Apple M\d)")
# Durations that are settings, not measurements (a retry back-off, a timeout), and targets
# ("at least 4x faster").
NOT_A_MEASUREMENT = re.compile(
    r"(?:back[- ]?off|timeout|timeouts|retry|retries|wait|at least)\b[^.\n]{0,30}$")


def _unmachined_speed_figures(text: str) -> list[str]:
    text = re.sub(r"```.*?```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    # machine_at[k]: a machine was named under the current heading of level k (0: before any
    # heading); a section includes its subsections, so a machine named under "## Measured"
    # holds for its "### ..." parts.
    found, machine_at, paragraph = [], {0: False}, []
    lines = text.split("\n") + [""]
    for number, line in enumerate(lines, 1):
        heading = re.match(r"(#+)\s", line)
        if heading:
            level = len(heading.group(1))
            machine_at = {k: v for k, v in machine_at.items() if k < level}
            machine_at[level] = False
        if line.strip() and not heading:
            paragraph.append((number, re.sub(r"`[^`]*`", "", line)))
            continue
        block = "\n".join(text for _, text in paragraph)
        if MACHINE.search(block):
            machine_at[max(machine_at)] = True
        if not any(machine_at.values()):
            for n, text_line in paragraph:
                for match in SPEED_FIGURE.finditer(text_line):
                    if not NOT_A_MEASUREMENT.search(text_line[:match.start()]):
                        found.append(f"line {n}: {match.group(0)!r} in {text_line.strip()[:90]!r}")
        paragraph = []
    return found


def test_the_speed_figure_check_itself():
    machine = "2-core AMD EPYC (AVX-512 yes, AVX-512 BF16 yes, AMX no)"
    assert _unmachined_speed_figures("It trains at 1,881 tokens/s.\n")
    assert _unmachined_speed_figures("It reaches 1.85 in about 37 s.\n")
    assert _unmachined_speed_figures("Ours is 1.95x faster.\n")
    assert _unmachined_speed_figures("# A\n\nOn a " + machine + ".\n\n# B\n\nIt takes 3 s.\n")
    assert _unmachined_speed_figures("## A\n\n### B\n\n" + machine + "\n\n### C\n\n3 s.\n")
    assert not _unmachined_speed_figures("## A\n\n" + machine + "\n\n### B\n\nIt takes 3 s.\n")
    assert _unmachined_speed_figures("On a 2-core Xeon it takes 3 s.\n")  # no AVX-512/AMX
    assert not _unmachined_speed_figures(f"On a {machine}: 1,881 tokens/s.\n")
    assert not _unmachined_speed_figures("3 s on a 2-core Xeon (AVX-512 yes,\nAMX yes).\n")
    assert not _unmachined_speed_figures(f"# A\n\nMachine: {machine}.\n\n| x | 37 s |\n")
    assert not _unmachined_speed_figures("Retries back off by 1 s, then 2 s.\n")
    assert not _unmachined_speed_figures("```\n$ run\n12.5 tokens/s\n```\n")


@pytest.mark.parametrize("md", _tracked_markdown(), ids=lambda p: str(p.relative_to(ROOT)))
def test_speed_figures_name_the_machine(md):
    found = _unmachined_speed_figures(md.read_text(encoding="utf-8"))
    assert not found, (f"{md.relative_to(ROOT)}: speed figures without the machine that "
                       "measured them (name it as `python -m "
                       "sprints.01_setup_and_basics.results.devices` prints it):\n"
                       + "\n".join(found))
