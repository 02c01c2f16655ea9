"""Hostile checkpoints are refused within a second and without allocating what they declare.

Each file below is loaded in one child process whose address space is capped at 300 MiB above what
it already uses: a loader that trusted a declared size (3 GiB from a 600-byte file) or inflated a
compressed entry (a 256 MiB array from a file of a few hundred KiB) would fail there with a
MemoryError, not with the clear error each case expects.
"""
import io
import json
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import distgrad as dg
from distgrad import serialization

CAP_BYTES = 300 << 20


def npy_bytes(shape, dtype="<f8") -> bytes:
    """A ``.npy`` header for ``shape`` (no data after it)."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": dtype, "fortran_order": False, "shape": shape})
    return out.getvalue()


def manifest(arrays: int = 1) -> bytes:
    tree = {"type": "dict", "keys": ["w"], "values": [{"type": "ndarray", "array": 0}]} if arrays else 0
    return json.dumps({"format": serialization.FORMAT, "version": serialization.VERSION, "tree": tree}).encode()


def patch_sizes(data: bytes, member: str, size: int) -> bytes:
    """Rewrites both the local header's and the central directory's sizes of ``member`` to ``size``."""
    data, name = bytearray(data), member.encode()
    local = data.index(b"PK\x03\x04")
    while data[local + 30:local + 30 + len(name)] != name:
        local = data.index(b"PK\x03\x04", local + 4)
    data[local + 18:local + 26] = size.to_bytes(4, "little") * 2
    central = data.index(b"PK\x01\x02")
    while data[central + 46:central + 46 + len(name)] != name:
        central = data.index(b"PK\x01\x02", central + 4)
    data[central + 20:central + 28] = size.to_bytes(4, "little") * 2
    return bytes(data)


def huge_declared_size(path):
    """About 600 bytes whose array entry declares 3 GiB of float64, header and zip sizes agreeing."""
    shape = (3 << 30) // 8
    header = npy_bytes((shape,))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(serialization.MANIFEST, manifest())
        zf.writestr("arrays/0.npy", header + b"\0" * 16)
    path.write_bytes(patch_sizes(path.read_bytes(), "arrays/0.npy", len(header) + shape * 8))


def compressed_entry(path):
    """A deflated entry that inflates to a 256 MiB array (a zip bomb, mild)."""
    count = (256 << 20) // 8
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(serialization.MANIFEST, manifest())
        info = zipfile.ZipInfo("arrays/0.npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w") as stream:
            stream.write(npy_bytes((count,)))
            zeros = bytes(16 << 20)
            for _ in range((count * 8) // len(zeros)):
                stream.write(zeros)


def truncated(path):
    dg.save({"w": dg.arange(100000, dtype=dg.float64)}, path)
    path.write_bytes(path.read_bytes()[:400000])


def bit_flipped(path):
    dg.save({"w": dg.arange(1000, dtype=dg.float64)}, path)
    data = bytearray(path.read_bytes())
    data[data.index(np.float64(999.0).tobytes())] ^= 0x10
    path.write_bytes(bytes(data))


class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def pickle_as_array(path):
    """A pickle that would run a command, where an array entry should be."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(serialization.MANIFEST, manifest())
        zf.writestr("arrays/0.npy", pickle.dumps(RunsCode()))


def pickle_file(path):
    """A bare pickle (what torch.save's old format is built on), given as a checkpoint."""
    path.write_bytes(pickle.dumps({"w": RunsCode()}))


CASES = {
    "huge_declared_size": (huge_declared_size, "entry arrays/0.npy declares"),
    "compressed_entry": (compressed_entry, "entry arrays/0.npy is compressed"),
    "truncated": (truncated, "is not a distgrad checkpoint or is corrupt"),
    "bit_flipped": (bit_flipped, "entry arrays/0.npy: Bad CRC-32"),
    "pickle_as_array": (pickle_as_array, "entry arrays/0.npy is not a valid .npy array"),
    "pickle_file": (pickle_file, "is not a distgrad checkpoint or is corrupt: File is not a zip file"),
}

CHILD = """
import json, resource, sys, time
import distgrad as dg
load = dg.load  # imports the lazy namespace (every op family) now, outside the timed loads and the cap
with open("/proc/self/status") as f:
    used = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (used + {cap}, resource.RLIM_INFINITY))
results = {{}}
for path in sys.argv[1:]:
    start = time.perf_counter()
    try:
        load(path)
        outcome = "loaded"
    except RuntimeError as exc:
        outcome = str(exc)
    except MemoryError as exc:
        outcome = "MemoryError " + str(exc)
    results[path] = {{"seconds": time.perf_counter() - start, "outcome": outcome}}
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def refusals(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    paths = {}
    for name, (make, _) in CASES.items():
        paths[name] = folder / f"{name}.dg"
        make(paths[name])
    done = subprocess.run([sys.executable, "-c", CHILD.format(cap=CAP_BYTES)] + [str(p) for p in paths.values()],
                          capture_output=True, text=True, timeout=120, cwd=folder)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert not (folder / "PWNED").exists()
    return {name: results[str(path)] | {"path": str(path)} for name, path in paths.items()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_checkpoint_is_refused_quickly_with_bounded_memory_naming_file_and_entry(refusals, case):
    result = refusals[case]
    assert result["outcome"].startswith(result["path"] + " is not a distgrad checkpoint or is corrupt: "), result
    assert CASES[case][1] in result["outcome"]
    assert result["seconds"] < 1.0, result


def test_the_huge_file_is_small_and_the_bomb_is_compressed(tmp_path):
    huge_declared_size(tmp_path / "a.dg")
    compressed_entry(tmp_path / "b.dg")
    assert os.path.getsize(tmp_path / "a.dg") < 1000
    assert os.path.getsize(tmp_path / "b.dg") < 2 << 20


def test_a_save_killed_mid_write_leaves_a_temporary_that_the_next_save_removes(tmp_path):
    target = tmp_path / "model.dg"
    script = ("import os, sys, distgrad as dg\nfrom distgrad import serialization\n"
              "serialization._write_array = lambda *a: os._exit(9)\n"
              "dg.save({'w': dg.ones(3)}, sys.argv[1])\n")
    assert subprocess.run([sys.executable, "-c", script, str(target)], timeout=60).returncode == 9
    left = [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    assert len(left) == 1 and left[0].startswith(".model.dg.")
    (tmp_path / ".other.dg.host.1.abc.tmp").write_bytes(b"")  # another target's: not ours to remove
    dg.save({"w": dg.ones(3)}, target)
    assert sorted(os.listdir(tmp_path)) == [".other.dg.host.1.abc.tmp", "model.dg"]


def test_saving_into_a_missing_folder_names_the_path_given(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cannot save to .*missing/model.dg: the folder .*missing' does not"):
        dg.save({"w": dg.ones(3)}, tmp_path / "missing" / "model.dg")
