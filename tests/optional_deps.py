"""Optional packages the tests use when installed, skipped with the command that installs them."""

import pytest

GGUF_CHECK_HINT = ("llama-cpp-python is in the optional gguf-check dependency group (it builds "
                   "from source with cmake and a C++ compiler): uv sync --all-groups")


def llama_cpp_or_skip():
    """The ``llama_cpp`` module, or skip the calling test with how to install it."""
    return pytest.importorskip("llama_cpp", reason=GGUF_CHECK_HINT)
