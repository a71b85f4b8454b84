"""The learner's path through sprints 8-10: the toy-number GPT walk and the figure scripts.

- sprint 8's 03_toy_gpt_walk computes every step by hand, and its numbers equal the model's
  own modules (forward hooks on attention, MLP and ln_f; torch's layer_norm and
  cross_entropy), for two head counts and two seeds; a wrong hand step makes it fail;
- the note 08_toy_gpt_walk.md pastes exactly what the script prints;
- every figure script runs into tmp_path and writes PNGs that PIL reads, of a sensible size;
  the attention weights drawn are the model's (equal to the walk's hand computation);
- the committed PNGs exist and a note or README links each one.
"""

from __future__ import annotations

import re
from importlib import import_module
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
S08 = ROOT / "sprints" / "08_gpt2_assembly"
walk_lib = import_module("sprints.08_gpt2_assembly.results.03_toy_gpt_walk")
figures8 = import_module("sprints.08_gpt2_assembly.results.04_figures")
kv_figure = import_module("sprints.10_pretrained_and_generation.results.kv_cache_figure")
lr_figure = import_module("sprints.09_train_gpt2.results.schedule_figure")


def _captured(model, module):
    """Run model(idx) and keep ``module``'s output."""
    seen = {}
    handle = module.register_forward_hook(lambda _m, _i, out: seen.setdefault("out", out))
    try:
        with torch.no_grad():
            model(torch.tensor([walk_lib.TOKENS]))
    finally:
        handle.remove()
    return seen["out"]


@pytest.mark.parametrize(("seed", "n_head"), [(0, 2), (0, 1), (1, 2)])
def test_toy_walk_equals_the_models_own_modules(seed, n_head):
    model = walk_lib.toy_model(seed, n_head)
    s = walk_lib.walk(model, show=lambda _text: None)
    block = model.transformer.h[0]
    assert s["logits"].shape == (1, 3, 10) and s["q"].shape == (1, n_head, 3, 4 // n_head)
    torch.testing.assert_close(s["logits"], s["model_logits"], atol=1e-6, rtol=0)
    # Each hand step against the module that computes it inside model(idx).
    torch.testing.assert_close(s["ln_1"], F.layer_norm(s["x0"], (4,), eps=1e-5))
    torch.testing.assert_close(s["attn_out"], _captured(model, block.attn))
    torch.testing.assert_close(s["mlp_out"], _captured(model, block.mlp))
    torch.testing.assert_close(s["ln_f"], _captured(model, model.transformer.ln_f))
    att = s["att"][0]
    assert torch.allclose(att.sum(-1), torch.ones(n_head, 3, dtype=att.dtype))
    visible = torch.ones(3, 3, dtype=torch.bool).tril()
    assert (att[:, ~visible] == 0).all() and (att[:, visible] > 0).all()
    expected_loss = F.cross_entropy(s["logits"][0], torch.tensor(walk_lib.TARGETS))
    assert abs(s["loss"].item() - expected_loss.item()) < 1e-12
    # The weights really are rounded to one decimal (the point of the toy numbers).
    wte = model.transformer.wte.weight
    assert torch.equal(wte, (wte * 10).round() / 10)


def test_a_wrong_hand_step_fails_the_walks_check(monkeypatch):
    # LayerNorm without the eps, and 1/C replaced by 1/(C-1): close, but not the model.
    def wrong_layer_norm(x, ln):
        mean = x.mean(-1, keepdim=True)
        return (x - mean) / x.var(-1, keepdim=True).sqrt() * ln.weight + ln.bias

    monkeypatch.setattr(walk_lib, "_layer_norm", wrong_layer_norm)
    with pytest.raises(AssertionError, match="hand-computed logits differ"):
        walk_lib.walk(walk_lib.toy_model(), show=lambda _text: None)


def test_the_note_pastes_what_the_script_prints(capsys):
    s = walk_lib.main([])
    printed = capsys.readouterr().out
    note = (S08 / "notes" / "08_toy_gpt_walk.md").read_text(encoding="utf-8")
    missing = [line for line in printed.splitlines() if line.strip() and line not in note]
    assert not missing, f"the note lacks these printed lines: {missing[:3]}"
    assert f"loss = {s['loss'].item():.4f}" in note and "loss = 2.7100" in note
    assert "check: the hand-computed logits and loss equal model(idx, targets) to 1e-6: yes" \
        in printed
    readme = (S08 / "README.md").read_text(encoding="utf-8")
    assert "(notes/08_toy_gpt_walk.md)" in readme


def test_attention_weights_drawn_are_the_models():
    # 04_figures takes q and k from the block's own modules; the walk computes them by hand.
    model = walk_lib.toy_model(0, 2)
    s = walk_lib.walk(model, show=lambda _text: None)
    drawn = figures8.attention_weights(model, torch.tensor([walk_lib.TOKENS]), layer=0)
    torch.testing.assert_close(drawn, s["att"])


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.verify()  # a truncated or non-PNG file raises here
    with Image.open(path) as image:
        assert image.format == "PNG", path
        return image.size


@pytest.mark.parametrize(("main", "argv", "names"), [
    (figures8.main, ["--checkpoint", "{tmp}/missing.pt"],
     ["gpt2_block.png", "causal_mask_attention.png"]),
    (kv_figure.main, ["--prompt-len", "3", "--decode-steps", "2"], ["kv_cache.png"]),
    (lr_figure.main, [], ["lr_schedules.png"]),
], ids=["sprint08", "sprint10-kv", "sprint09-lr"])
def test_each_figure_script_writes_readable_pngs(main, argv, names, tmp_path, capsys):
    main(["--out-dir", str(tmp_path), *(a.replace("{tmp}", str(tmp_path)) for a in argv)])
    out = capsys.readouterr().out
    for name in names:
        width, height = _png_size(tmp_path / name)
        assert 400 <= width <= 4000 and 300 <= height <= 4000, (name, width, height)
        assert str(tmp_path / name) in out
    if main is figures8.main:  # no checkpoint there: it says it drew a random model
        assert "missing.pt not found: a randomly initialized GPT" in out


def test_figure_scripts_help_and_bad_input(capsys, tmp_path):
    for main in (figures8.main, kv_figure.main, lr_figure.main, walk_lib.main):
        with pytest.raises(SystemExit) as info:
            main(["--help"])
        assert info.value.code == 0
        assert "--out-dir" in capsys.readouterr().out or main is walk_lib.main
    with pytest.raises(SystemExit) as info:
        kv_figure.main(["--out-dir", str(tmp_path), "--prompt-len", "0"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        figures8.main(["--out-dir", str(tmp_path), "--checkpoint", str(tmp_path / "none.pt"),
                       "--layer", "7"])
    assert info.value.code == 1
    assert "error: --layer 7: the model has layers 0..1" in capsys.readouterr().err


def test_the_schedule_figure_uses_the_presets_numbers():
    settings = import_module("sprints.09_train_gpt2.results.settings")
    panels = {name: (args, lrs) for name, args, lrs in lr_figure.schedules()}
    assert set(settings.PRESETS) <= set(panels)
    for name, preset in settings.PRESETS.items():
        args, lrs = panels[name]
        assert len(lrs) == preset["max_steps"]
        assert max(lrs) == pytest.approx(preset["lr"])
        assert lrs[preset["warmup_steps"] - 1] == pytest.approx(preset["lr"])  # warmup's end
        assert lrs[-1] == pytest.approx(preset["min_lr"], abs=preset["lr"] / 100)


COMMITTED = [
    (S08 / "images" / "gpt2_block.png", S08 / "notes" / "08_toy_gpt_walk.md"),
    (S08 / "images" / "causal_mask_attention.png", S08 / "notes" / "08_toy_gpt_walk.md"),
    (ROOT / "sprints" / "10_pretrained_and_generation" / "images" / "kv_cache.png",
     ROOT / "sprints" / "10_pretrained_and_generation" / "README.md"),
    (ROOT / "sprints" / "09_train_gpt2" / "images" / "lr_schedules.png",
     ROOT / "sprints" / "09_train_gpt2" / "README.md"),
    (ROOT / "sprints" / "09_train_gpt2" / "images" / "minimal_loss.png",
     ROOT / "sprints" / "09_train_gpt2" / "notes" / "01_minimal_training_loop.md"),
]


@pytest.mark.parametrize(("png", "page"), COMMITTED, ids=[p.name for p, _ in COMMITTED])
def test_committed_pngs_exist_and_are_shown(png, page):
    assert png.is_file(), f"{png} is missing: run its figure script"
    width, height = _png_size(png)
    assert width >= 400 and height >= 300
    text = page.read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)  # markdown images
    assert any((page.parent / link).resolve() == png.resolve() for link in links), (
        f"{page.name} shows no image link to {png.name}")
