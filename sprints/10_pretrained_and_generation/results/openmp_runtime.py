"""Warn when PyTorch runs on another package's OpenMP runtime instead of the one it ships.

PyTorch's Linux wheels bring their own OpenMP runtime, torch/lib/libgomp.so.1, and so do
other packages, or they link the system's libgomp.so.1. A process loads a shared library
of a given name once: whichever package is imported first decides which copy every
package then uses. Imported before torch, llama-cpp-python (built on the machine, linked to
the system's GCC runtime) puts torch on the system's libgomp. Measured with numba_step.py
(notes/05_decoding_speed.md, "A measurement trap"): on that runtime, after
``torch.set_num_threads`` and numba's parallel steps, PyTorch's CPU attention over a
512-token prompt took about 20 times longer. Nothing in this repository's code is wrong
then; the import order is, so the cure is a message, not a workaround.

``foreign_openmp()`` reads the libraries this process has mapped (/proc/self/maps) and
returns the libgomp that is loaded where torch's own is not; ``warn_if_foreign()`` turns
that into one warning per process. Elsewhere (macOS, Windows, a torch without a bundled
libgomp) both do nothing.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import torch

_MAPS = Path("/proc/self/maps")


def _torch_libgomp() -> str | None:
    """The real path of the libgomp.so.1 that torch's wheel ships, or None if it has none."""
    own = Path(torch.__file__).parent / "lib" / "libgomp.so.1"
    return os.path.realpath(own) if own.exists() else None


def loaded_libgomp(maps_text: str) -> set[str]:
    """Paths of every libgomp mapped in a /proc/<pid>/maps listing."""
    paths = set()
    for line in maps_text.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and Path(parts[5]).name.startswith("libgomp"):
            paths.add(parts[5].strip())
    return paths


def foreign_libgomp(maps_text: str, torch_libgomp: str | None) -> str | None:
    """The libgomp this process uses in place of ``torch_libgomp``, or None where torch's own
    is the one loaded (or torch ships none, or no libgomp is loaded at all)."""
    if torch_libgomp is None:
        return None
    loaded = loaded_libgomp(maps_text)
    if not loaded or any(os.path.realpath(p) == torch_libgomp for p in loaded):
        return None
    return sorted(loaded)[0]


def foreign_openmp() -> str | None:
    """``foreign_libgomp`` of this process (Linux), else None."""
    try:
        maps = _MAPS.read_text()
    except OSError:  # not Linux, or /proc not mounted
        return None
    return foreign_libgomp(maps, _torch_libgomp())


@functools.cache
def warn_if_foreign() -> str | None:
    """Warn once per process if torch runs on a foreign libgomp; returns its path."""
    path = foreign_openmp()
    if path is not None:
        warnings.warn(
            f"torch is running on the OpenMP runtime {path}, not on the one it ships "
            f"({_torch_libgomp()}): a package imported before torch loaded it (llama_cpp "
            "does). PyTorch's CPU attention can then run many times slower after the "
            "compiled decoding steps; import torch first, or set "
            "NUMBA_THREADING_LAYER=workqueue before starting Python.",
            RuntimeWarning, stacklevel=2)
    return path


__all__ = ["foreign_libgomp", "foreign_openmp", "loaded_libgomp", "warn_if_foreign"]
