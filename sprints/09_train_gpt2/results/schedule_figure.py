"""Draw lr_schedules.png: the learning rate of every step for train_gpt2's defaults and each
``--preset``, from ``lr_schedule.lr_at`` with the settings that train_gpt2 itself resolves.

    uv run python -m sprints.09_train_gpt2.results.schedule_figure

Nothing is copied: each panel parses ``--preset NAME`` with train_gpt2's own parser, resolves
it as train_gpt2 does (``settings.resolve_settings``), and calls ``lr_at`` for every step
0..max_steps-1 with ``decay_steps = --lr-decay-steps or --max-steps``, as the training loop
does. Muon's parameter groups (the cpu-speedrun preset) follow the same curve scaled to
``--muon-lr``.
"""

from __future__ import annotations

import argparse
from importlib import import_module
from pathlib import Path

IMAGES = Path(__file__).resolve().parent.parent / "images"


def schedules() -> list[tuple[str, object, list[float]]]:
    """(name, resolved settings, lr of every step) for the defaults and each preset."""
    settings = import_module("sprints.09_train_gpt2.results.settings")
    lr_at = import_module("sprints.09_train_gpt2.results.lr_schedule").lr_at
    out = []
    for name in [None, *sorted(settings.PRESETS)]:
        args = settings.build_parser().parse_args([] if name is None else ["--preset", name])
        args = settings.resolve_settings(args)
        decay_steps = args.lr_decay_steps or args.max_steps
        lrs = [lr_at(step, args.lr, args.min_lr, args.warmup_steps, decay_steps,
                     args.lr_schedule, args.cooldown_fraction) for step in range(args.max_steps)]
        out.append((name or "defaults (no --preset)", args, lrs))
    return out


def draw_schedules(path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = schedules()
    cols = 2
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 3.6 * rows), squeeze=False)
    for ax, (name, args, lrs) in zip(axes.flat, panels, strict=False):
        ax.plot(range(len(lrs)), lrs, color="tab:blue", lw=1.8)
        ax.axvline(args.warmup_steps, color="tab:orange", ls="--", lw=1)
        ax.text(args.warmup_steps, args.lr * 0.5, f" warmup ends\n step {args.warmup_steps}",
                color="tab:orange", fontsize=8, va="center")
        decay = args.lr_decay_steps or args.max_steps
        detail = (f"wsd, cooldown {args.cooldown_fraction:g} of {decay} steps"
                  if args.lr_schedule == "wsd" else f"cosine to step {decay}")
        ax.set_title(f"{name}: {args.optimizer}, {detail}", fontsize=10)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("learning rate")
        ax.set_ylim(0, args.lr * 1.1)
        ax.axhline(args.min_lr, color="gray", lw=0.8, ls=":")
        peak = f"max_lr {args.lr:g}"
        if args.optimizer == "muon":
            peak += f" (Muon's matrices: muon_lr {args.muon_lr:g})"
        ax.text(len(lrs) * 0.98, args.lr * 1.02, peak, ha="right", fontsize=8)
        ax.text(len(lrs) * 0.5, args.min_lr + args.lr * 0.03, f"min_lr {args.min_lr:g}",
                ha="center", fontsize=8, color="gray")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle("train_gpt2's learning-rate schedules (lr_schedule.lr_at, settings.PRESETS)",
                 fontsize=12)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=IMAGES,
                        help="where lr_schedules.png goes (default: sprint 9's images/)")
    args = parser.parse_args(argv)
    path = draw_schedules(args.out_dir / "lr_schedules.png")
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
