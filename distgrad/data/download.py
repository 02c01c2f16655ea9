"""Downloading a file from the first of several mirrors that serves it with the expected MD5."""
from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
from typing import Sequence

__all__ = ["DownloadError", "download"]


class DownloadError(RuntimeError):
    """No mirror served the file intact; ``failures`` lists ``'url: reason'`` for each one tried."""

    def __init__(self, filename: str, failures: list[str]):
        self.failures = failures
        super().__init__(f"could not download {filename}:\n  " + "\n  ".join(failures))


def download(filename: str, md5: str, folder: str, mirrors: Sequence[str], timeout: float = 30.0) -> str:
    """Downloads ``filename`` into ``folder`` from the first mirror whose copy has the given MD5.

    The file is written under a temporary name and renamed once verified, so an interrupted,
    truncated or corrupt download never appears under the final name. Returns the final path.
    """
    os.makedirs(folder, exist_ok=True)
    destination = os.path.join(folder, filename)
    failures = []
    for mirror in mirrors:
        url = mirror + filename if mirror.endswith("/") else f"{mirror}/{filename}"
        try:
            _download_verified(url, md5, destination, timeout)
            return destination
        except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError and timeouts are OSErrors
            failures.append(f"{url}: {exc}")
    raise DownloadError(filename, failures)


def _download_verified(url: str, md5: str, destination: str, timeout: float) -> None:
    folder, name = os.path.split(destination)
    fd, partial = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
    try:
        digest = hashlib.md5(usedforsecurity=False)  # a checksum, not security
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != md5:
            raise ValueError(f"MD5 mismatch: got {digest.hexdigest()}, expected {md5}")
        os.replace(partial, destination)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
