"""The kernel sources: ``cuda/*.cu`` files, each read as one self-contained text (``common.cuh`` pasted in
where it is included) that NVRTC, nvcc and the emulator's g++ all compile unchanged."""
from __future__ import annotations

import functools
import os

SOURCE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cuda")


@functools.cache
def source_text(filename: str) -> str:
    """``filename`` with ``#include "common.cuh"`` replaced by that file's text."""
    with open(os.path.join(SOURCE_DIR, filename)) as f:
        text = f.read()
    with open(os.path.join(SOURCE_DIR, "common.cuh")) as f:
        common = f.read().replace("#pragma once\n", "")
    return text.replace('#include "common.cuh"\n', common)


class KernelFile:
    """One ``.cu`` file and the names (with template arguments) of the kernels launched from it."""

    def __init__(self, filename: str, names):
        self.filename, self.names = filename, tuple(names)

    @property
    def text(self) -> str:
        return source_text(self.filename)

    def __repr__(self):
        return f"KernelFile({self.filename!r}, {len(self.names)} kernels)"
