"""Sprint 4: early stopping, checkpoints, augmentation, and train_mnist.py end to end on tiny
synthetic MNIST files (read by torchvision's MNIST class), with TensorBoard's own reader."""

import copy
import json
import math
from importlib import import_module
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from tests.test_sprint02 import write_fake_mnist

early_stopping = import_module("sprints.04_advanced_training_mnist.results.early_stopping")
checkpoint = import_module("sprints.04_advanced_training_mnist.results.checkpoint")
augment = import_module("sprints.04_advanced_training_mnist.results.augment")
cnn = import_module("sprints.04_advanced_training_mnist.results.cnn")
train_mnist = import_module("sprints.04_advanced_training_mnist.results.train_mnist")
mnist_data = import_module("sprints.02_datasets_and_dataloaders.results.mnist_data")


def test_early_stopping_on_a_scripted_loss_sequence_restores_the_best_weights():
    losses = [1.0, 0.8, 0.85, 0.7, 0.75, 0.71, 0.72, 0.5]  # best 0.7 at epoch 4
    model = nn.Linear(2, 1)
    stopper = early_stopping.EarlyStopping(patience=3)
    stopped_at = None
    for epoch, loss in enumerate(losses, start=1):
        with torch.no_grad():
            model.weight.fill_(epoch)  # weights that say which epoch produced them
        if stopper.step(loss, model):
            stopped_at = epoch
            break
    # epochs 5, 6, 7 fail to beat 0.7: the third of them triggers the stop; 0.5 is never seen
    assert stopped_at == 7
    assert stopper.best_epoch == 4 and stopper.best_loss == 0.7
    assert model.weight.eq(7).all()
    stopper.restore(model)
    assert model.weight.eq(4).all()


def test_early_stopping_min_delta_and_patience_reset():
    model = nn.Linear(1, 1)
    stopper = early_stopping.EarlyStopping(patience=2, min_delta=0.1)
    steps = [stopper.step(v, model) for v in [1.0, 0.95, 0.85, 0.84, 0.83]]
    # 0.95 is not 0.1 better than 1.0; 0.85 is (counter resets); 0.84 and 0.83 are not
    assert steps == [False, False, False, False, True]
    assert stopper.best_loss == 0.85
    with pytest.raises(ValueError, match="patience"):
        early_stopping.EarlyStopping(patience=0)


def test_checkpoint_is_atomic_and_loads_weights_only(tmp_path, monkeypatch):
    path = tmp_path / "best.pt"
    model = cnn.MnistCNN(width=4)
    checkpoint.save_atomic({"model": model.state_dict(), "epoch": 1}, path)
    first = path.read_bytes()

    def crash(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full (test)")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save_atomic({"epoch": 2}, path)
    assert path.read_bytes() == first  # the old checkpoint survived the failed write
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]  # no temp file left behind
    monkeypatch.undo()

    loaded = checkpoint.load_checkpoint(path)
    fresh = cnn.MnistCNN(width=4)
    fresh.load_state_dict(loaded["model"])
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(),
                                                 model.state_dict().values(), strict=True))
    with pytest.raises(FileNotFoundError, match="train first"):
        checkpoint.load_checkpoint(tmp_path / "missing.pt")


def test_batch_random_affine_identity_and_background_fill():
    x = torch.rand(5, 1, 28, 28)
    identity = augment.BatchRandomAffine(degrees=0, translate_px=0, scale=(1.0, 1.0))
    assert torch.allclose(identity(x), x, atol=1e-5)
    # a blank normalised image (background -0.42) must stay blank whatever the transform
    blank = torch.full((4, 1, 28, 28), -0.42)
    out = augment.BatchRandomAffine(degrees=30, translate_px=4, fill=-0.42)(blank)
    assert torch.allclose(out, blank, atol=1e-5)
    # each image gets its own transform: identical inputs come out different
    same = x[:1].expand(4, 1, 28, 28)
    moved = augment.BatchRandomAffine(generator=torch.Generator().manual_seed(0))(same)
    assert not torch.allclose(moved[0], moved[1])


def test_cnn_shapes_and_bad_input():
    model = cnn.MnistCNN(width=8)
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        model(torch.randn(3, 28, 28))


def _scalars(log_dir) -> dict[str, list]:
    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: acc.Scalars(tag) for tag in acc.Tags()["scalars"]}


def test_train_mnist_end_to_end_on_synthetic_idx_files(tmp_path):
    write_fake_mnist(tmp_path / "data", n_train=480, n_test=200, gz=True)
    out = tmp_path / "run"
    epochs, batch = 3, 32
    summary = train_mnist.main([
        "--data-dir", str(tmp_path / "data"), "--epochs", str(epochs), "--out-dir", str(out),
        "--seed", "0", "--width", "8", "--batch-size", str(batch), "--no-progress",
        "--no-download", "--patience", "5",
    ])
    on_disk = json.loads((out / "summary.json").read_text())
    for key in ("test_accuracy", "best_val_loss", "epochs_run", "elapsed_s"):
        assert key in on_disk
    assert on_disk["epochs_run"] == epochs and on_disk["n_val"] == 24  # 5% of 480
    assert on_disk["n_test"] == 200
    # the bars are easy to tell apart: the CNN must beat chance (0.1) by far
    assert on_disk["test_accuracy"] > 0.6

    # the checkpoint loads with weights_only=True into a fresh model and reproduces the
    # test accuracy, computed here by hand from torchvision's reading of the test file
    state = torch.load(out / "best_model.pt", weights_only=True)
    model = cnn.MnistCNN(width=8)
    model.load_state_dict(state["model"])
    model.eval()
    test = mnist_data.load_mnist(tmp_path / "data", train=False, download=False)
    x = (test.data.unsqueeze(1).float() / 255 - state["mean"]) / state["std"]
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == test.targets).float().mean().item()
    assert accuracy == pytest.approx(summary["test_accuracy"], abs=1e-6)
    assert state["val_loss"] == pytest.approx(on_disk["best_val_loss"])

    # TensorBoard's own reader: one point per epoch; lr follows the cosine formula
    run_dir = Path(summary["tensorboard_dir"])
    assert run_dir.parent == out / "tensorboard"  # each run logs to its own subfolder
    scalars = _scalars(run_dir)
    for tag in ("loss/train", "loss/val", "accuracy/train", "accuracy/val", "lr"):
        assert [e.step for e in scalars[tag]] == list(range(1, epochs + 1)), tag
    steps_per_epoch = (480 - 24) // batch  # drop_last=True
    total = epochs * steps_per_epoch
    for event in scalars["lr"]:
        done = (event.step - 1) * steps_per_epoch
        expected = 3e-3 * (1 + math.cos(math.pi * done / total)) / 2
        assert event.value == pytest.approx(expected, rel=1e-4)
    assert scalars["accuracy/test"][0].value == pytest.approx(summary["test_accuracy"], rel=1e-6)


def test_train_mnist_split_test_uses_only_the_test_file(tmp_path):
    write_fake_mnist(tmp_path / "data", n_test=300, gz=False)  # no train-* files at all
    summary = train_mnist.main([
        "--data-dir", str(tmp_path / "data"), "--epochs", "1", "--out-dir", str(tmp_path / "o"),
        "--split-test", "240", "--width", "4", "--no-progress", "--no-download",
    ])
    assert summary["n_train"] + summary["n_val"] == 240 and summary["n_test"] == 60


def test_train_mnist_without_data_says_where_to_put_it(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("no network (test)")

    monkeypatch.setattr(mnist_data, "download_and_extract_archive", offline)
    with pytest.raises(mnist_data.MissingMNISTError) as info:
        train_mnist.main(["--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "o")])
    message = str(info.value)
    assert str(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz") in message
    assert "--split-test" in message


def _tiny_run_args(data_dir, out_dir, *extra) -> list[str]:
    return ["--data-dir", str(data_dir), "--out-dir", str(out_dir), "--width", "4",
            "--batch-size", "32", "--limit-train", "64", "--no-progress", "--no-download",
            *extra]


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_train_mnist_stops_early_and_tests_the_best_checkpoint(tmp_path, monkeypatch):
    # Validation losses scripted per epoch: best at epoch 2, then two worse epochs; with
    # --patience 2 training must stop after epoch 4 of 6 and keep epoch 2's weights.
    script = [1.0, 0.6, 0.7, 0.8, 0.9, 0.95]
    write_fake_mnist(tmp_path / "data", n_train=160, n_test=40, gz=False)
    seen = []  # weights of the model as each epoch's validation saw them

    def scripted_validate(model, loader, loss_fn):
        seen.append(copy.deepcopy(model.state_dict()))
        return {"loss": script[len(seen) - 1], "accuracy": 0.5}

    at_test = []  # weights when the test set is measured (the only other evaluate call)
    real_evaluate = train_mnist.loops.evaluate

    def recording_evaluate(model, loader, loss_fn, **kwargs):
        at_test.append(copy.deepcopy(model.state_dict()))
        return real_evaluate(model, loader, loss_fn, **kwargs)

    monkeypatch.setattr(train_mnist, "validate", scripted_validate)
    monkeypatch.setattr(train_mnist.loops, "evaluate", recording_evaluate)
    out = tmp_path / "run"
    summary = train_mnist.main(_tiny_run_args(tmp_path / "data", out, "--epochs", "6",
                                              "--patience", "2", "--seed", "0"))

    assert summary["epochs_run"] == len(seen) == 4 < 6
    assert summary["best_val_loss"] == 0.6 and summary["best_epoch"] == 2
    state = torch.load(out / "best_model.pt", weights_only=True)
    assert state["epoch"] == 2 and state["val_loss"] == 0.6
    assert _same_weights(state["model"], seen[1])  # the checkpoint holds epoch 2's weights
    assert not _same_weights(seen[1], seen[3])  # ...which differ from the last epoch's
    assert len(at_test) == 1 and _same_weights(at_test[0], seen[1])  # tested with the best
    logged = [e.value for e in _scalars(summary["tensorboard_dir"])["loss/val"]]
    assert logged == pytest.approx(script[:4])


@pytest.mark.parametrize("extra, flag", [
    (["--split-test", "30", "--val-fraction", "1.5"], "--val-fraction"),
    (["--val-fraction", "0"], "--val-fraction"),
    (["--batch-size", "0"], "--batch-size"),
    (["--epochs", "0"], "--epochs"),
    (["--lr", "nan"], "--lr"),
    (["--label-smoothing", "1"], "--label-smoothing"),
    (["--patience", "0"], "--patience"),
    (["--limit-train", "-1"], "--limit-train"),
    (["--split-test", "40"], "--split-test"),  # the test file holds only 40 digits
    (["--batch-size", "65"], "--batch-size"),  # more than the 64 digits --limit-train keeps
])
def test_train_mnist_rejects_bad_numbers_before_creating_out_dir(tmp_path, capsys, extra, flag):
    write_fake_mnist(tmp_path / "data", n_train=100, n_test=40, gz=False)
    out = tmp_path / "never"
    with pytest.raises(SystemExit) as info:
        train_mnist.main(_tiny_run_args(tmp_path / "data", out, *extra))
    assert info.value.code == 2  # argparse's usage error, not a crash
    err = capsys.readouterr().err
    assert flag in err and "usage:" in err and "Traceback" not in err
    assert not out.exists()


def test_train_mnist_reruns_log_to_separate_tensorboard_runs(tmp_path):
    write_fake_mnist(tmp_path / "data", n_train=100, n_test=40, gz=False)
    out = tmp_path / "run"
    first = train_mnist.main(_tiny_run_args(tmp_path / "data", out, "--epochs", "2"))
    second = train_mnist.main(_tiny_run_args(tmp_path / "data", out, "--epochs", "1"))
    runs = sorted(p for p in (out / "tensorboard").iterdir())
    assert [str(p) for p in runs] == sorted([first["tensorboard_dir"], second["tensorboard_dir"]])
    assert not list((out / "tensorboard").glob("events.*"))  # nothing loose in the parent
    # TensorBoard's reader sees each run's own epochs, once each, not the two runs mixed
    assert [e.step for e in _scalars(first["tensorboard_dir"])["loss/train"]] == [1, 2]
    assert [e.step for e in _scalars(second["tensorboard_dir"])["loss/train"]] == [1]


devices = import_module("sprints.01_setup_and_basics.results.devices")


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_train_mnist_missing_device_is_a_usage_error_before_anything_is_written(
        tmp_path, capsys, monkeypatch, device):
    if device in devices.available_devices():  # on a machine that has it, pretend it has not
        monkeypatch.setattr(devices, f"{device}_available", lambda: False)
    write_fake_mnist(tmp_path / "data", n_train=100, n_test=40, gz=False)
    out = tmp_path / "never"
    with pytest.raises(SystemExit) as info:
        train_mnist.main(_tiny_run_args(tmp_path / "data", out, "--device", device))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: --device {device}: torch sees no" in err and "usage:" in err
    assert "This machine has: " in err and "--device auto" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_train_mnist_runs_on_the_device_asked_for(tmp_path, device):
    write_fake_mnist(tmp_path / "data", n_train=100, n_test=40, gz=False)
    out = tmp_path / "run"
    summary = train_mnist.main(_tiny_run_args(tmp_path / "data", out, "--epochs", "1",
                                              "--device", device))
    expected = "cpu" if device == "cpu" else devices.available_devices()[0]
    assert torch.device(summary["device"]).type == expected
    assert json.loads((out / "summary.json").read_text())["device"] == summary["device"]
    # the checkpoint reads back on the CPU whatever device trained it
    state = checkpoint.load_checkpoint(out / "best_model.pt")
    assert all(t.device.type == "cpu" for t in state["model"].values())
    cnn.MnistCNN(width=4).load_state_dict(state["model"])


def test_device_loader_moves_batches_and_pins_memory_only_for_cuda():
    data = torch.utils.data.TensorDataset(torch.randn(10, 1, 28, 28), torch.arange(10))
    meta = train_mnist.DeviceLoader(data, torch.device("meta"), batch_size=4)
    batches = list(meta)
    assert len(meta) == len(batches) == 3  # 4 + 4 + 2
    assert all(x.device.type == y.device.type == "meta" for x, y in batches)
    assert [tuple(x.shape) for x, _ in batches] == [(4, 1, 28, 28)] * 2 + [(2, 1, 28, 28)]
    assert not meta.loader.pin_memory
    assert not train_mnist.DeviceLoader(data, torch.device("cpu")).loader.pin_memory
    # built, not iterated: pinning itself needs a GPU
    assert train_mnist.DeviceLoader(data, torch.device("cuda")).loader.pin_memory


def test_batch_random_affine_works_on_the_batch_device():
    # the transforms are drawn on the CPU; they must follow the batch to its device ("meta"
    # stands in for a GPU here: a CPU theta with a meta batch is the same mismatch)
    x = torch.zeros(3, 1, 28, 28, device="meta")
    out = augment.BatchRandomAffine(generator=torch.Generator().manual_seed(0))(x)
    assert out.device.type == "meta" and out.shape == x.shape


@pytest.mark.parametrize(("argv", "flag"), [(["--width", "0"], "--width"),
                                            (["--batch-size", "-1"], "--batch-size")])
def test_cnn_shapes_script_rejects_bad_sizes(argv, flag, capsys):
    shapes = import_module("sprints.04_advanced_training_mnist.results.01_cnn_shapes")
    with pytest.raises(SystemExit) as info:
        shapes.main(argv)  # was a RuntimeError from inside Conv2d / torch.randn
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and "usage:" in err
