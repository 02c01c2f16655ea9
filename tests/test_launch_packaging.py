"""The launcher installs as ``distgrad.launch`` with a ``distgrad-launch`` script, and no package is left out."""
import os
import shutil
import subprocess

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pyproject() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def test_every_package_directory_is_listed_in_pyproject():
    on_disk = {os.path.relpath(d, ROOT).replace(os.sep, ".") for d, _, files in os.walk(os.path.join(ROOT, "distgrad"))
               if "__init__.py" in files}
    listed = set(pyproject()["tool"]["setuptools"]["packages"])
    assert on_disk | {"distgrad.launch"} == listed


def test_the_launcher_folder_installs_as_distgrad_launch():
    config = pyproject()
    assert config["tool"]["setuptools"]["package-dir"] == {"distgrad.launch": "launch"}
    assert config["project"]["scripts"]["distgrad-launch"] == "distgrad.launch.main:main"
    import distgrad.launch
    assert os.path.dirname(distgrad.launch.__file__) == os.path.join(ROOT, "launch")


def test_the_console_script_is_installed():
    script = shutil.which("distgrad-launch")
    assert script is not None, "distgrad-launch is not on PATH: pip install -e ."
    done = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "usage: distgrad-launch" in done.stdout
