"""Sprint 2: IDX files, MNIST loading, mean/std, the custom transform, augmentation grid.

The tests write small MNIST-format files themselves (struct-packed big-endian headers, as the
IDX format specifies) and use torchvision's own MNIST reader as the reference. Nothing is
downloaded: the one download path is monkeypatched to fail.
"""

import gzip
import socket
import struct
import sys
from importlib import import_module
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import scipy.ndimage
import torch
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import MNIST

mnist_data = import_module("sprints.02_datasets_and_dataloaders.results.mnist_data")
idx_dataset = import_module("sprints.02_datasets_and_dataloaders.results.idx_dataset")
mean_std_script = import_module("sprints.02_datasets_and_dataloaders.results.03_mnist_mean_std")
custom_transform = import_module("sprints.02_datasets_and_dataloaders.results.04_custom_transform")
augmentation_grid = import_module(
    "sprints.02_datasets_and_dataloaders.results.05_augmentation_grid"
)


# ---------- helpers shared with test_sprint04 ----------


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    """IDX: 0x00 0x00, type 0x08 (ubyte), ndim; then each dim as big-endian uint32; data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(">" + "I" * array.ndim, *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


def pattern_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Easy, distinct 'digits': class k is a bright bar at row 4 + 2k (noise and a random column
    added), so a tiny CNN can learn them in a few steps."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        row = 4 + 2 * int(k)
        col = int(rng.integers(3, 8))
        images[i, row : row + 2, col : col + 16] = 255
    return images, labels


def write_fake_mnist(root: Path, n_train: int = 0, n_test: int = 0, gz: bool = True,
                     seed: int = 0) -> dict:
    """Files in torchvision's layout root/MNIST/raw/; returns the arrays written."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    written = {}
    for prefix, n, s in (("train", n_train, seed), ("t10k", n_test, seed + 1)):
        if n:
            images, labels = pattern_digits(n, s)
            write_idx(raw / f"{prefix}-images-idx3-ubyte", images, gz)
            write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, gz)
            written[prefix] = (images, labels)
    return written


# ---------- IDX reading: ours and the loader against torchvision's MNIST ----------


@pytest.mark.parametrize("gz", [True, False])
def test_idx_dataset_and_load_mnist_match_torchvision(tmp_path, gz):
    written = write_fake_mnist(tmp_path, n_train=50, n_test=30, gz=gz)
    # ensure_mnist_files unpacks .gz files the way torchvision's download step does;
    # torchvision's class wants all four files unpacked before it reads either split
    raw = mnist_data.ensure_mnist_files(tmp_path, train=True, download=False)
    assert mnist_data.ensure_mnist_files(tmp_path, train=False, download=False) == raw
    for train, prefix in ((True, "train"), (False, "t10k")):
        reference = MNIST(str(tmp_path), train=train, download=False)  # torchvision's reader
        images, labels = written[prefix]
        assert np.array_equal(reference.data.numpy(), images)  # our writer is valid IDX

        ours = idx_dataset.IdxDigits(raw / f"{prefix}-images-idx3-ubyte",
                                     raw / f"{prefix}-labels-idx1-ubyte")
        assert len(ours) == len(reference)
        for i in (0, 7, len(ours) - 1):
            image, label = ours[i]
            assert image.shape == (1, 28, 28)
            assert torch.allclose(image, reference.data[i].float().unsqueeze(0) / 255)
            assert label == int(reference.targets[i])

        loaded = mnist_data.load_mnist(tmp_path, train=train, download=False)
        assert torch.equal(loaded.data, reference.data)
        assert torch.equal(loaded.targets, reference.targets)


def test_read_idx_rejects_a_file_that_is_not_idx(tmp_path):
    bad = tmp_path / "x-idx3-ubyte"
    bad.write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="not an IDX file"):
        idx_dataset.read_idx(bad)


def test_test_split_alone_is_enough(tmp_path):
    # Only t10k-*.gz present (what ../shared/data/mnist holds): torchvision's own class would
    # refuse (it checks all four files); load_mnist reads the test split.
    written = write_fake_mnist(tmp_path, n_test=40, gz=True)
    with pytest.raises(RuntimeError, match="Dataset not found"):
        MNIST(str(tmp_path), train=False, download=False)
    ds = mnist_data.load_mnist(tmp_path, train=False, download=False)
    assert np.array_equal(ds.data.numpy(), written["t10k"][0])
    assert np.array_equal(ds.targets.numpy(), written["t10k"][1])


def test_missing_mnist_fails_fast_and_says_where_to_put_files(tmp_path, monkeypatch):
    seen_timeouts = []

    def offline(url, download_root, filename=None, md5=None):
        seen_timeouts.append(socket.getdefaulttimeout())
        raise URLError("no network (test)")

    monkeypatch.setattr(mnist_data, "download_and_extract_archive", offline)
    before = socket.getdefaulttimeout()
    with pytest.raises(mnist_data.MissingMNISTError) as info:
        mnist_data.load_mnist(tmp_path / "nowhere", train=True)
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "MNIST" / "raw" / "train-images-idx3-ubyte.gz") in message
    assert "train-labels-idx1-ubyte.gz" in message and "--data-dir" in message
    # every attempt ran under a finite socket timeout (so it cannot hang), one per mirror,
    # and it stopped at the first missing file; the global timeout is restored afterwards
    assert seen_timeouts == [mnist_data.DOWNLOAD_TIMEOUT_S] * len(MNIST.mirrors)
    assert socket.getdefaulttimeout() == before


def test_no_download_flag_raises_without_network(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist_data, "download_and_extract_archive",
                        lambda *a, **k: pytest.fail("download attempted"))
    with pytest.raises(mnist_data.MissingMNISTError, match="t10k-images-idx3-ubyte.gz"):
        mnist_data.load_mnist(tmp_path, train=False, download=False)


# ---------- mean / std ----------


def test_mean_std_script_matches_numpy(tmp_path):
    written = write_fake_mnist(tmp_path, n_train=70, n_test=20)
    images = written["train"][0].astype(np.float64) / 255
    mean, std = mean_std_script.dataset_mean_std(str(tmp_path), train=True, batch_size=16)
    # ToTensor divides by 255 in float32, so agreement is to float32 precision
    assert mean == pytest.approx(images.mean(), rel=1e-6)
    assert std == pytest.approx(images.std(), rel=1e-6)  # population std, as Normalize wants

    # Normalize with those numbers gives mean 0, std 1 (checked with numpy, not our helper)
    pipeline = transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))])
    ds = mnist_data.load_mnist(tmp_path, train=True, transform=pipeline, download=False)
    normalised = torch.cat([x for x, _ in DataLoader(ds, batch_size=32)]).double().numpy()
    assert abs(normalised.mean()) < 1e-5 and normalised.std() == pytest.approx(1, abs=1e-5)


# ---------- custom transform ----------


def _reference_recenter(image: np.ndarray) -> np.ndarray:
    """scipy: centre of mass, then an integer shift with zero fill."""
    r, c = scipy.ndimage.center_of_mass(image)
    h, w = image.shape
    shift = (round((h - 1) / 2 - r), round((w - 1) / 2 - c))
    return scipy.ndimage.shift(image, shift, order=0, mode="constant", cval=0.0)


def test_recenter_by_mass_matches_scipy():
    rng = np.random.default_rng(0)
    recenter = custom_transform.RecenterByMass()
    for trial in range(20):
        image = np.zeros((28, 28), dtype=np.float32)
        r, c = rng.integers(0, 22, 2)
        image[r : r + 6, c : c + 5] = rng.random((6, 5), dtype=np.float32)  # off-centre blob
        out = recenter(torch.from_numpy(image).unsqueeze(0))
        assert out.shape == (1, 28, 28)
        expected = _reference_recenter(image)
        assert np.array_equal(out[0].numpy(), expected), f"trial {trial}"
        # nothing was cut off, so the centre of mass is now within half a pixel of the middle
        com = scipy.ndimage.center_of_mass(out[0].numpy())
        assert abs(com[0] - 13.5) <= 0.5 and abs(com[1] - 13.5) <= 0.5
        assert out.sum().item() == pytest.approx(image.sum(), rel=1e-6)


def test_recenter_by_mass_in_compose_and_bad_input():
    recenter = custom_transform.RecenterByMass()
    blank = torch.zeros(1, 28, 28)
    assert torch.equal(recenter(blank), blank)
    normalised = transforms.Normalize((0.5,), (0.5,))(torch.rand(1, 28, 28))
    with pytest.raises(ValueError, match="before Normalize"):
        recenter(normalised)


# ---------- the scripts that draw ----------


def test_augmentation_grid_column_titles_name_the_transforms_that_run():
    # A title is one transform's class name (arguments in brackets allowed) or several joined
    # by " + ", in the order a Compose applies them; the module docstring lists each column.
    for title, transform in augmentation_grid.augmentations().items():
        steps = transform.transforms if isinstance(transform, transforms.Compose) else [transform]
        named = [part.split("(")[0] for part in title.split(" + ")]
        assert named == [type(step).__name__ for step in steps], title
        assert title.split("(")[0] in augmentation_grid.__doc__, title


def test_augmentation_grid_and_custom_transform_scripts_write_pngs(tmp_path, monkeypatch):
    write_fake_mnist(tmp_path / "d", n_test=12)
    for module, png in ((augmentation_grid, "augmentation_grid.png"),
                        (custom_transform, "custom_transform.png")):
        monkeypatch.setattr(sys, "argv", ["x", "--data-dir", str(tmp_path / "d"),
                                          "--out-dir", str(tmp_path / "out"),
                                          "--num-digits", "3"])
        module.main()
        assert (tmp_path / "out" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_custom_transform_draws_a_single_digit(tmp_path):
    write_fake_mnist(tmp_path / "d", n_test=3)
    custom_transform.main(["--data-dir", str(tmp_path / "d"), "--out-dir", str(tmp_path / "out"),
                           "--num-digits", "1"])  # one column: axes must stay a 2-D grid
    assert (tmp_path / "out" / "custom_transform.png").read_bytes()[:4] == b"\x89PNG"


# ---------- bad command-line input: a usage error naming the flag, never a traceback ----------

PKG = "sprints.02_datasets_and_dataloaders.results"


@pytest.mark.parametrize(("script", "argv", "flag"), [
    ("02_dataloader_basics", ["--num-digits", "0"], "--num-digits"),  # was a bare StopIteration
    ("02_dataloader_basics", ["--batch-size", "0"], "--batch-size"),
    ("04_custom_transform", ["--num-digits", "0"], "--num-digits"),
    ("05_augmentation_grid", ["--num-digits", "-2"], "--num-digits"),
    ("06_num_workers", ["--batch-size", "0"], "--batch-size"),
    ("06_num_workers", ["--num-digits", "0"], "--num-digits"),
    ("06_num_workers", ["--workers", "0", "-1"], "--workers"),
])
def test_scripts_reject_bad_numbers_before_reading_data(script, argv, flag, tmp_path, monkeypatch,
                                                        capsys):
    # Checked at parse time: no data is needed, and none may be fetched.
    monkeypatch.setattr(mnist_data, "download_and_extract_archive",
                        lambda *a, **k: pytest.fail("download attempted"))
    with pytest.raises(SystemExit) as info:
        import_module(f"{PKG}.{script}").main(["--data-dir", str(tmp_path), *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and "usage:" in err


@pytest.mark.parametrize("script", ["04_custom_transform", "05_augmentation_grid"])
def test_drawing_scripts_reject_more_digits_than_the_file_holds(script, tmp_path, capsys):
    write_fake_mnist(tmp_path / "d", n_test=5)
    out = tmp_path / "never"
    with pytest.raises(SystemExit) as info:
        import_module(f"{PKG}.{script}").main(["--data-dir", str(tmp_path / "d"),
                                               "--out-dir", str(out), "--num-digits", "6"])
    assert info.value.code == 2  # was an IndexError from the dataset
    assert "--num-digits 6 is more than the 5 digits" in capsys.readouterr().err
    assert not out.exists()
