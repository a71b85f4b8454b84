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
