"""Sprint 3: linear regression, the training loop and the evaluation loop."""

from importlib import import_module

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

lr_mod = import_module("sprints.03_models_and_training_loops.results.linear_regression")
loops = import_module("sprints.03_models_and_training_loops.results.training_loop")


def test_linear_regression_recovers_true_weights():
    """Adam + MSELoss reach the least-squares solution; tolerance 0.02 on every weight.

    With 1000 samples and noise std 0.1 the least-squares estimate itself sits within about
    0.1 / sqrt(1000) = 0.003 of the truth, so 0.02 leaves room for Adam's last steps only.
    """
    torch.manual_seed(0)
    true_w, true_b = torch.tensor([2.0, -3.4, 0.5]), 4.2
    ds = lr_mod.make_synthetic(1000, true_w, true_b, noise_std=0.1, seed=0)
    model = lr_mod.LinearRegression(3)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    loader = DataLoader(ds, batch_size=64, shuffle=True)
    for _ in range(30):
        loops.train_one_epoch(model, loader, nn.MSELoss(), optimizer, progress=False)

    # closed-form reference: least squares on [x, 1]
    x, y = ds.tensors
    design = torch.cat([x, torch.ones(len(x), 1)], dim=1)
    solution = torch.linalg.lstsq(design, y).solution.squeeze(1)
    learnt = torch.cat([model.linear.weight.detach().squeeze(0), model.linear.bias.detach()])
    assert torch.allclose(learnt, solution, atol=0.02)
    assert torch.allclose(learnt, torch.cat([true_w, torch.tensor([true_b])]), atol=0.02)


def test_train_one_epoch_matches_a_hand_written_sgd_step():
    torch.manual_seed(0)
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    model = lr_mod.LinearRegression(3)
    w0, b0 = model.linear.weight.detach().clone(), model.linear.bias.detach().clone()
    stats = loops.train_one_epoch(model, DataLoader(TensorDataset(x, y), batch_size=8),
                                  nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.1),
                                  progress=False)
    # d/dw mean((xw^T + b - y)^2) = 2/N * r^T x, with r the residuals (closed form)
    r = x @ w0.T + b0 - y
    assert stats["loss"] == pytest.approx((r**2).mean().item(), rel=1e-6)
    assert torch.allclose(model.linear.weight, w0 - 0.1 * 2 / 8 * (r.T @ x), atol=1e-6)
    assert torch.allclose(model.linear.bias, b0 - 0.1 * 2 / 8 * r.sum(0), atol=1e-6)
    assert model.linear.weight.grad is None  # zero_grad ran after the step
    assert "accuracy" not in stats  # regression targets are floats


def test_evaluate_runs_in_eval_mode_without_grad_and_restores_mode():
    model = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.5), nn.Linear(16, 3))
    seen = []
    model[0].register_forward_hook(
        lambda mod, inp, out: seen.append((model.training, torch.is_grad_enabled()))
    )
    x, y = torch.randn(20, 4), torch.randint(0, 3, (20,))
    loader = DataLoader(TensorDataset(x, y), batch_size=6)  # last batch is partial
    model.train()
    stats = loops.evaluate(model, loader, nn.CrossEntropyLoss())
    assert seen and all(mode == (False, False) for mode in seen)
    assert model.training  # the caller's mode is back
    model.eval()
    with torch.no_grad():  # reference: one full batch, dropout off
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y).item()
        acc = (logits.argmax(1) == y).float().mean().item()
    assert stats["loss"] == pytest.approx(loss, rel=1e-5)  # batch means weighted by size
    assert stats["accuracy"] == pytest.approx(acc)


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--epochs", "0"], "--epochs"),
        (["--batch-size", "0"], "--batch-size"),
        (["--lr", "-0.1"], "--lr"),
        (["--lr", "nan"], "--lr"),
        (["--noise-std", "-1"], "--noise-std"),
    ],
)
def test_train_script_rejects_bad_numbers_before_writing(argv, flag, tmp_path, capsys):
    script = import_module(
        "sprints.03_models_and_training_loops.results.01_train_linear_regression"
    )
    out = tmp_path / "never"
    with pytest.raises(SystemExit) as info:
        script.main([*argv, "--out-dir", str(out)])
    assert info.value.code == 2  # a usage error, not the IndexError of an empty history
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and "usage:" in err
    assert not out.exists()
