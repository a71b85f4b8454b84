"""Where to compute: ``--device auto|cpu|cuda|mps``, and what this CPU does fast.

    from importlib import import_module
    devices = import_module("sprints.01_setup_and_basics.results.devices")
    parser.add_argument("--device", choices=devices.DEVICE_CHOICES, default="auto")
    device = devices.pick_device(args.device)  # torch.device, or DeviceError with advice

``auto`` takes an NVIDIA GPU (CUDA) if torch sees one, then an Apple GPU (MPS), then the CPU.
Asking for a device that is not there is an error that says what is available, never a
silent fall back to the CPU: a run that was meant for a GPU should not quietly take 50 times
longer.

The CPU part answers one question the training scripts ask when ``--dtype auto`` picks a
precision: does this CPU multiply bfloat16 matrices in hardware? With Intel's AMX tiles or
the AVX-512 BF16 instructions (Xeon since Cooper Lake, AMD since Zen 4) oneDNN runs bf16
matmuls faster than float32; without them, bf16 is converted in software and is slower than
float32. Nothing here imports torch at module level, so a parser that uses
``DEVICE_CHOICES`` still answers ``--help`` at once.
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")

# oneDNN's instruction-set levels (the values ONEDNN_MAX_CPU_ISA takes) as oneDNN's own
# dnnl_cpu_isa_t bit masks: a level includes another when it has all of that one's bits. Not
# a plain order: AVX2_VNNI_2 does not include AVX512_CORE, and the AVX10_1 names are aliases
# of the AVX512_CORE_FP16 / _AMX / _AMX_FP16 ones.
_ONEDNN_ISA_BITS = {
    "SSE41": 0x1, "AVX": 0x3, "AVX2": 0x7, "AVX2_VNNI": 0xF, "AVX2_VNNI_2": 0x1F,
    "AVX512_CORE": 0x27, "AVX512_CORE_VNNI": 0x67, "AVX512_CORE_BF16": 0xE7,
    "AVX10_1_512": 0x1EF, "AVX512_CORE_FP16": 0x1EF,
    "AVX10_1_512_AMX": 0xFEF, "AVX512_CORE_AMX": 0xFEF,
    "AVX10_1_512_AMX_FP16": 0x1FEF, "AVX512_CORE_AMX_FP16": 0x1FEF,
}


class DeviceError(ValueError):
    """A device was asked for that this machine does not have; the message says what it has."""


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """The device types torch can use on this machine, fastest first; "cpu" is always there."""
    found = [name for name, ok in (("cuda", cuda_available), ("mps", mps_available)) if ok()]
    return [*found, "cpu"]


def pick_device(name: str = "auto"):
    """``auto`` -> cuda, else mps, else cpu. An explicit name must be available here.

    Also accepts an indexed CUDA device such as ``cuda:1``.
    """
    import torch

    kind, _, index = name.partition(":")
    if kind not in DEVICE_CHOICES or (index and (kind == "auto" or not index.isdigit())):
        raise DeviceError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}"
                          " (cuda may carry a GPU number, as in cuda:1)")
    have = available_devices()
    if kind == "auto":
        return torch.device(have[0])
    if kind not in have:
        why = {"cuda": "torch sees no CUDA GPU (no NVIDIA GPU, no driver, or a CPU-only torch "
                       "build)",
               "mps": "torch sees no Apple GPU (MPS needs an Apple-silicon Mac with macOS 12.3 "
                      "or newer)"}[kind]
        raise DeviceError(f"--device {name}: {why}. This machine has: {', '.join(have)}; "
                          "pass --device auto to take the best of them.")
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise DeviceError(f"--device {name}: torch sees {count} CUDA GPU(s), numbered 0 to "
                          f"{count - 1}")
    return torch.device(name)


@lru_cache(maxsize=1)
def _cpuinfo_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def _onednn_allows(level: str) -> bool:
    """False when ONEDNN_MAX_CPU_ISA caps oneDNN below ``level`` (used to emulate older CPUs)."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if cap not in _ONEDNN_ISA_BITS:  # unset, ALL, DEFAULT or a name newer than this table
        return True
    need = _ONEDNN_ISA_BITS[level]
    return _ONEDNN_ISA_BITS[cap] & need == need


def cpu_features() -> dict[str, bool]:
    """Which of the instruction sets that matter for matmul speed this CPU has (and may use).

    ``avx512``: 512-bit vectors (AVX-512F); ``avx512_bf16``: bf16 dot products in AVX-512;
    ``amx``: Intel's AMX tile units for bf16. Read from /proc/cpuinfo on Linux, else from
    torch's own CPU checks; ONEDNN_MAX_CPU_ISA and ATEN_CPU_CAPABILITY can only lower them.
    """
    flags = _cpuinfo_flags()
    if flags:
        avx512 = "avx512f" in flags
        bf16 = "avx512_bf16" in flags
        amx = "amx_bf16" in flags and "amx_tile" in flags
    else:  # no /proc/cpuinfo (macOS, Windows): torch names its vector level, nothing finer
        import torch

        avx512 = torch.backends.cpu.get_cpu_capability() == "AVX512"
        bf16 = amx = False  # unknown here; "no" keeps float32, which is never the slow choice
    aten = os.environ.get("ATEN_CPU_CAPABILITY", "").strip().lower()
    if aten in ("avx2", "default"):
        avx512 = False
    return {
        "avx512": avx512 and _onednn_allows("AVX512_CORE"),
        "avx512_bf16": bf16 and avx512 and _onednn_allows("AVX512_CORE_BF16"),
        "amx": amx and _onednn_allows("AVX512_CORE_AMX"),
    }


def cpu_has_fast_bf16() -> bool:
    """True when bf16 matmuls run in hardware (AMX or AVX-512 BF16), so autocast can pay."""
    features = cpu_features()
    return features["amx"] or features["avx512_bf16"]


@lru_cache(maxsize=1)
def cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def describe_cpu(cores: int | None = None) -> str:
    """One line naming the CPU the way the project's speed figures do, for example
    ``2-core AMD EPYC (AVX-512 yes, AVX-512 BF16 yes, AMX no)``; ``cores`` defaults to the
    cores this process may run on."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
    f = cpu_features()
    yes = {True: "yes", False: "no"}
    return (f"{cores}-core {cpu_model_name()} (AVX-512 {yes[f['avx512']]}, "
            f"AVX-512 BF16 {yes[f['avx512_bf16']]}, AMX {yes[f['amx']]})")


def main(argv: list[str] | None = None) -> None:
    import argparse

    argparse.ArgumentParser(
        description="Print this machine's CPU features and the devices torch can use."
    ).parse_args(argv)
    print(describe_cpu())
    print("devices:", ", ".join(available_devices()))
    print("--device auto picks:", pick_device("auto"))


if __name__ == "__main__":
    main()
