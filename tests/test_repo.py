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


# ----- the cpu-speedrun preset's numbers, wherever sprint 9's docs quote them ----------------
# Each entry: a file, a pattern that finds one way the docs quote the preset, and which preset
# value each captured number must equal. A pattern that no longer matches fails too (the quote
# was reworded: update the pattern), so a quote cannot silently drop out of the check.
# Derived names: head_size = n_embd / n_head, last_step = max_steps - 1, cooldown =
# round(cooldown_fraction * max_steps).
_S9 = "sprints/09_train_gpt2"
SPEEDRUN_QUOTES = [
    (f"{_S9}/README.md", r"`--preset cpu-speedrun`[^|\n]*\| (\d+) x (\d+) x (\d+) \|",
     ("max_steps", "batch_size", "block_size")),
    (f"{_S9}/README.md",
     r"The speedrun preset: [^.]*?(\d+) layers x (\d+) \((\d+) heads of (\d+)\)[^.]*?"
     r"\(beta1 ([\d.]+)\)[^.]*?batch (\d+), WSD over\s+(\d+) steps",
     ("n_layer", "n_embd", "n_head", "head_size", "beta1", "batch_size", "max_steps")),
    (f"{_S9}/README.md", r"Muon plus WSD reached\s+in (\d+) steps of batch (\d+)",
     ("max_steps", "batch_size")),
    (f"{_S9}/notes/12_speedrun.md",
     r"`--preset cpu-speedrun`[^|\n]*\| (\d+) steps of (\d+) x (\d+), (\d+) x (\d+)",
     ("max_steps", "batch_size", "block_size", "n_layer", "n_embd")),
    (f"{_S9}/notes/12_speedrun.md",
     r"\*\*(\d+) x (\d+), (\d+) heads \(chosen[^|]*\| \*\*(\d+) x \d+\*\* \((\d+)\)",
     ("n_layer", "n_embd", "n_head", "batch_size", "max_steps")),
    (f"{_S9}/notes/12_speedrun.md", r"\*\*beta1 ([\d.]+), (\d+) steps \(the preset\)\*\*",
     ("beta1", "max_steps")),
    (f"{_S9}/notes/12_speedrun.md", r"against [\d.]+ / [\d.]+ at ([\d.]+)\), so\s+([\d.]+) stays",
     ("muon_lr", "muon_lr")),
    (f"{_S9}/notes/04_training_loop.md",
     r"`cpu-speedrun` preset's values \(`max_lr = ([\d.e-]+), min_lr = ([\d.e-]+), "
     r"W = (\d+), D = (\d+)`, fraction\s+([\d.]+)\): `c = (\d+) - (\d+) = (\d+)`",
     ("lr", "min_lr", "warmup_steps", "max_steps", "cooldown_fraction", "max_steps",
      "cooldown", "cooldown")),
    (f"{_S9}/notes/04_training_loop.md",
     r"the last step, (\d+), trains at `([\d.e-]+) / (\d+) = [\d.e-]+`",
     ("last_step", "lr", "cooldown")),
]


def _speedrun_quote_problems(texts: dict[str, str], preset: dict) -> list[str]:
    values = dict(preset, head_size=preset["n_embd"] / preset["n_head"],
                  last_step=preset["max_steps"] - 1,
                  cooldown=round(preset["cooldown_fraction"] * preset["max_steps"]))
    problems = []
    for path, pattern, keys in SPEEDRUN_QUOTES:
        matches = list(re.finditer(pattern, texts[path]))
        if not matches:
            problems.append(f"{path}: the cpu-speedrun quote {pattern!r} is gone; if it was "
                            "reworded, update SPEEDRUN_QUOTES in tests/test_repo.py")
        for match in matches:
            for key, quoted in zip(keys, match.groups(), strict=True):
                if float(quoted) != float(values[key]):
                    problems.append(f"{path}: quotes cpu-speedrun's {key} as {quoted}, but "
                                    f"settings.py's PRESETS has {values[key]} "
                                    f"(in {' '.join(match.group(0).split())!r})")
    return problems


def _wsd_example_problems(text: str, preset: dict, lr_at) -> list[str]:
    """04_training_loop.md's WSD worked example: every quoted lr(s) is lr_at's, to its digits."""
    example = text[text.index("**WSD**"):text.index("**Why WSD")]
    args = (preset["lr"], preset["min_lr"], preset["warmup_steps"], preset["max_steps"], "wsd",
            preset["cooldown_fraction"])
    quoted = [(int(s), float(v)) for s, v in re.findall(r"`lr\((\d+)\) = ([\d.e-]+)`", example)]
    last = re.search(r"the last step, (\d+), trains at `[^`]*= ([\d.e-]+)`", example)
    quoted.append((int(last.group(1)), float(last.group(2))))
    plateau = re.search(r"`lr\(s\) = ([\d.e-]+)` from step (\d+) to (\d+)", example)
    value, first, end = float(plateau.group(1)), int(plateau.group(2)), int(plateau.group(3))
    quoted += [(first, value), (end, value)]
    problems = [f"04_training_loop.md: lr({s}) = {v:g} in the WSD example, but lr_at gives "
                f"{lr_at(s, *args):.3g} with the cpu-speedrun preset"
                for s, v in quoted if abs(lr_at(s, *args) - v) > 0.01 * abs(v)]
    if lr_at(end + 1, *args) >= value:
        problems.append(f"04_training_loop.md: the WSD example's plateau ends at step {end}, but "
                        f"lr_at({end + 1}) is still {lr_at(end + 1, *args):g}")
    return problems


def _sprint9_texts() -> dict[str, str]:
    return {path: (ROOT / path).read_text(encoding="utf-8") for path, _, _ in SPEEDRUN_QUOTES}


def test_sprint9_docs_quote_the_cpu_speedrun_preset_as_settings_defines_it():
    from importlib import import_module

    settings = import_module("sprints.09_train_gpt2.results.settings")
    lr_at = import_module("sprints.09_train_gpt2.results.lr_schedule").lr_at
    preset = settings.PRESETS["cpu-speedrun"]
    texts = _sprint9_texts()
    problems = _speedrun_quote_problems(texts, preset)
    problems += _wsd_example_problems(texts[f"{_S9}/notes/04_training_loop.md"], preset, lr_at)
    assert not problems, "\n".join(problems)


def test_the_speedrun_quote_check_itself():
    from importlib import import_module

    settings = import_module("sprints.09_train_gpt2.results.settings")
    lr_at = import_module("sprints.09_train_gpt2.results.lr_schedule").lr_at
    texts = _sprint9_texts()
    for key, value in [("max_steps", 230), ("n_layer", 3), ("n_embd", 128), ("n_head", 4),
                       ("batch_size", 32), ("lr", 2e-2), ("beta1", 0.9), ("muon_lr", 0.035)]:
        drifted = dict(settings.PRESETS["cpu-speedrun"], **{key: value})
        problems = _speedrun_quote_problems(texts, drifted)
        if key in ("max_steps", "lr"):
            problems += _wsd_example_problems(texts[f"{_S9}/notes/04_training_loop.md"], drifted,
                                              lr_at)
        assert any(key in p or "lr(" in p for p in problems), key
    reworded = dict(texts, **{f"{_S9}/README.md": "nothing quoted here"})
    assert any("is gone" in p for p in _speedrun_quote_problems(
        reworded, settings.PRESETS["cpu-speedrun"]))


def test_sprint9_output_layer_flops_share_matches_the_benchmark_shape():
    # README's key insight: the output layer's share of a token's forward matmul FLOPs, for
    # bench_train_throughput.py's GPT-2-vocabulary model and for GPT-2 124M.
    text = " ".join((ROOT / _S9 / "README.md").read_text(encoding="utf-8").split())
    claim = re.search(
        r"model \((\d+) layers x (\d+), vocabulary ([\d,]+), context (\d+)\) a token's forward "
        r"pass costs `2 x \d+ x [\d,]+ = ([\d.]+) M` FLOPs in the output layer and `[^`]*= "
        r"([\d.]+) M` in the \w+ blocks \(2 FLOPs per multiply-add\), so the output layer is "
        r"(\d+)% of the matmul FLOPs \((\d+)% in GPT-2 124M", text)
    assert claim, "README.md: the output-layer FLOPs sentence was reworded; update this test"
    n_layer, width, vocab, context = (int(g.replace(",", "")) for g in claim.groups()[:4])
    bench = (ROOT / "benchmarks" / "bench_train_throughput.py").read_text(encoding="utf-8")
    shape = re.search(r"big = dict\([^)]*n_layer=(\d+)[^)]*n_embd=(\d+)[^)]*vocab=(\d+)"
                      r"[^)]*block=(\d+)", bench)
    assert (n_layer, width, vocab, context) == tuple(map(int, shape.groups())), (
        "README.md quotes another shape than bench_train_throughput.py's `big`")

    def share(layers, c, t):  # per layer: 4C^2 + 8C^2 weights (2 FLOPs each), QK^T and AV
        blocks, head = layers * (24 * c * c + 4 * t * c), 2 * c * vocab
        return head, blocks, head / (head + blocks)

    head, blocks, frac = share(n_layer, width, context)
    assert float(claim.group(5)) == round(head / 1e6, 1)
    assert float(claim.group(6)) == round(blocks / 1e6, 1)
    assert int(claim.group(7)) == round(100 * frac)
    assert int(claim.group(8)) == round(100 * share(12, 768, 1024)[2])
