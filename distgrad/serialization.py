"""``save`` and ``load``: checkpoints as a zip of one JSON tree plus one ``.npy`` per array -- no pickle.

Inside the zip::

    distgrad.json       {"format": "distgrad-checkpoint", "version": 1, "tree": <node>}
    arrays/<k>.npy      array k, written with allow_pickle=False

A node is JSON null, true/false, a string, a number, a list (a Python list), or an object tagged by "type":
``{"type": "tensor", "array": k, "device": "cuda:0", "requires_grad": true}``, ``{"type": "ndarray", "array": k}``,
``{"type": "scalar", "array": k}`` (a NumPy scalar), ``{"type": "tuple", "items": [...]}``,
``{"type": "dict" | "OrderedDict", "keys": [...], "values": [...]}`` (so integer keys stay integers),
``{"type": "float", "value": "inf" | "-inf" | "nan"}`` and ``{"type": "int", "hex": "0x..."}`` (beyond 64 bits).
An array referenced twice (a tied weight) is stored once and loaded once, still shared. A bfloat16
array, which ``.npy`` cannot name, is stored as its uint16 bits and its nodes say ``"dtype": "bfloat16"``.

Loading parses JSON and ``.npy`` headers and copies bytes: nothing in the file is ever executed.
A hostile or broken file is refused before anything of the size it declares is allocated: entries
must be stored uncompressed (the writer never compresses), and each entry's declared size must fit in
the bytes the file really has; every error names the file and the entry.
Saving to a path writes a temporary file beside it and renames it over the target only when complete,
so a crash mid-save leaves the previous checkpoint as it was; the next save of the same target
removes temporaries that such a crash left.
"""
from __future__ import annotations

import contextlib
import glob
import io
import json
import math
import os
import socket
import time
import uuid
import zipfile
from collections import OrderedDict

import numpy as np

from distgrad import backend, dtypes
from distgrad.tensor import Tensor

__all__ = ["load", "save"]

MANIFEST = "distgrad.json"
FORMAT = "distgrad-checkpoint"
VERSION = 1
_SUPPORTED = "Tensors, NumPy arrays and scalars, dicts, lists, tuples, str, int, float, bool and None"
_NON_FINITE = ("inf", "-inf", "nan")
_READ_CHUNK = 16 << 20
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed member times: saving the same object twice gives the same bytes
_STALE_AFTER_S = 24 * 3600  # a temporary from another host counts as abandoned after this long


def save(obj, f) -> None:
    """Writes ``obj`` (nested dicts/lists/tuples of Tensors, arrays, numbers, strings, None) to ``f``.

    Args:
        obj: what to save, e.g. ``{'model': model.state_dict(), 'optimizer': opt.state_dict(), 'epoch': 3}``.
        f: a path (written atomically: temporary file, fsync, rename) or a binary file-like object.
    """
    encoder = _Encoder()
    tree = encoder.encode(obj, "obj")  # fails on an unsupported type before any file is touched
    if isinstance(f, (str, os.PathLike)):
        _replace_atomically(os.fspath(f), lambda stream: _write_checkpoint(tree, encoder.arrays, stream))
    else:
        _write_checkpoint(tree, encoder.arrays, f)


def load(f, map_location=None):
    """Reads what ``save`` wrote to ``f`` (a path or a binary file-like object).

    Args:
        map_location: where tensors go. None: the device each was saved on (an error if that GPU is
            absent); ``'cpu'``, ``'cuda'``, ``'cuda:N'`` or a Device: all tensors there; a dict such as
            ``{'cuda:1': 'cuda:0'}``: saved devices it names are remapped, others kept.

    Raises:
        RuntimeError: ``"<f> is not a distgrad checkpoint or is corrupt: ..."`` for a file that is not
            one, is truncated, or fails its checksums; or when a tensor's target GPU is not present.
    """
    place = _placement(map_location)
    if isinstance(f, (str, os.PathLike)):
        name = os.fspath(f)
        with open(name, "rb") as stream:
            tree, tensors = _read_checkpoint(stream, name)
    else:
        name = str(getattr(f, "name", f"<{type(f).__name__}>"))
        seekable = getattr(f, "seekable", None)
        stream = f if seekable is not None and seekable() else io.BytesIO(f.read())
        tree, tensors = _read_checkpoint(stream, name)
    _move_tensors(tensors, place, name)
    return tree


# --- writing -----------------------------------------------------------------------------------
class _Encoder:
    """Turns an object tree into JSON nodes, collecting its arrays (each distinct array once)."""

    def __init__(self):
        self.arrays: list = []
        self._index_of: dict[int, int] = {}
        self._open: set[int] = set()  # containers being encoded, to refuse a tree that contains itself

    def _array_node(self, kind: str, array, **extra) -> dict:
        index = self._index_of.get(id(array))
        if index is None:
            index = self._index_of[id(array)] = len(self.arrays)
            self.arrays.append(array)
        if array.dtype == dtypes.bfloat16:
            extra["dtype"] = "bfloat16"
        return {"type": kind, "array": index, **extra}

    def encode(self, obj, where: str):
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, Tensor):
            return self._array_node("tensor", obj.array, device=str(obj.device), requires_grad=obj.requires_grad)
        if isinstance(obj, (np.ndarray, np.generic)):
            if obj.dtype.hasobject:
                raise TypeError(f"distgrad.save cannot store {where}: a NumPy array of Python objects would need "
                                "pickle; convert it to a numeric array or a list")
            return self._array_node("ndarray", obj) if isinstance(obj, np.ndarray) else \
                self._array_node("scalar", np.asarray(obj))
        if isinstance(obj, int):
            return obj if -2**63 <= obj < 2**63 else {"type": "int", "hex": hex(obj)}
        if isinstance(obj, float):
            return obj if math.isfinite(obj) else {"type": "float", "value": repr(obj)}
        if isinstance(obj, (list, tuple, dict)):
            if id(obj) in self._open:
                raise ValueError(f"distgrad.save cannot store {where}: it contains itself")
            self._open.add(id(obj))
            try:
                return self._encode_container(obj, where)
            finally:
                self._open.discard(id(obj))
        raise TypeError(f"distgrad.save cannot store {where} of type {type(obj).__name__}; it stores {_SUPPORTED}")

    def _encode_container(self, obj, where: str):
        if isinstance(obj, list):
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        if isinstance(obj, tuple):
            return {"type": "tuple", "items": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
        return {"type": "OrderedDict" if isinstance(obj, OrderedDict) else "dict",
                "keys": [self.encode(k, f"a key of {where}") for k in obj],
                "values": [self.encode(v, f"{where}[{k!r}]") for k, v in obj.items()]}


def _write_checkpoint(tree, arrays: list, stream) -> None:
    with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_STORED) as zf:
        manifest = {"format": FORMAT, "version": VERSION, "tree": tree}
        zf.writestr(zipfile.ZipInfo(MANIFEST, _ZIP_EPOCH), json.dumps(manifest, allow_nan=False))
        for index, array in enumerate(arrays):
            array = backend.to_device(array, backend.CPU)
            _write_array(zf, f"arrays/{index}.npy", array.view(np.uint16) if array.dtype == dtypes.bfloat16 else array)


def _write_array(zf: zipfile.ZipFile, member: str, array: np.ndarray) -> None:
    """Streams ``array`` into the zip as ``.npy`` (no copy of the whole array is made)."""
    large = array.nbytes + (1 << 16) > zipfile.ZIP64_LIMIT
    with zf.open(zipfile.ZipInfo(member, _ZIP_EPOCH), "w", force_zip64=large) as stream:
        np.lib.format.write_array(stream, array, allow_pickle=False)


def _replace_atomically(path: str, write) -> None:
    """``write(stream)`` into a temporary file beside ``path``, made durable, then renamed onto ``path``."""
    given = path
    path = os.path.realpath(path)  # through a symlink, replace the file it points to, not the link
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save to {given}: the folder {os.path.dirname(given) or '.'!r} does not exist")
    _remove_stale_temporaries(path)
    host = socket.gethostname().replace(".", "_")
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{host}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot save to {given}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


def _remove_stale_temporaries(path: str) -> None:
    """Removes temporaries of ``path`` left by a save that was killed: those of a process of this
    host that is gone, and those of other hosts untouched for a day."""
    host = socket.gethostname().replace(".", "_")
    pattern = os.path.join(glob.escape(os.path.dirname(path)), f".{glob.escape(os.path.basename(path))}.*.tmp")
    for temporary in glob.glob(pattern):
        parts = os.path.basename(temporary)[len(os.path.basename(path)) + 2:-4].split(".")
        try:
            if len(parts) == 3 and parts[0] == host and parts[1].isdigit():
                stale = not _process_exists(int(parts[1]))
            else:  # another host's, or an older naming
                stale = time.time() - os.path.getmtime(temporary) > _STALE_AFTER_S or len(parts) == 1
            if stale:
                os.unlink(temporary)
        except OSError:
            pass  # raced with its owner, or not ours to remove


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_directory(directory: str) -> None:
    """Makes the rename durable too (POSIX; where a directory cannot be opened there is nothing to do)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory
    finally:
        os.close(fd)


# --- reading -----------------------------------------------------------------------------------
def _read_checkpoint(stream, name: str):
    """The object tree (tensors still on the host) and the tensors with their saved devices."""
    try:
        stream.seek(0, os.SEEK_END)
        archive_size = stream.tell()
        stream.seek(0)
        with zipfile.ZipFile(stream) as zf:
            manifest = json.loads(_read_member(zf, MANIFEST, archive_size))
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                raise ValueError(f"entry {MANIFEST} does not describe a {FORMAT}")
            if manifest.get("version") != VERSION:
                raise ValueError(f"entry {MANIFEST}: format version {manifest.get('version')!r}; this distgrad "
                                 f"reads version {VERSION}")
            decoder = _Decoder(zf, archive_size)
            return decoder.decode(manifest["tree"]), decoder.tensors
    except Exception as exc:  # anything that breaks while parsing untrusted bytes is the file's fault
        reason = str(exc) or type(exc).__name__  # MemoryError and friends have no message
        raise RuntimeError(f"{name} is not a distgrad checkpoint or is corrupt: {reason}") from exc


def _stored_member(zf: zipfile.ZipFile, member: str, archive_size: int) -> zipfile.ZipInfo:
    """``member``'s entry, refused unless it is stored uncompressed and fits in the archive's bytes
    (so nothing the file merely declares is ever allocated)."""
    try:
        info = zf.getinfo(member)
    except KeyError:
        raise ValueError(f"entry {member} is missing") from None
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"entry {member} is compressed (zip method {info.compress_type}); distgrad checkpoints "
                         "store entries uncompressed, so this file was not written by distgrad.save")
    if info.compress_size != info.file_size or info.header_offset + info.compress_size > archive_size:
        raise ValueError(f"entry {member} declares {info.file_size} bytes but the file holds only "
                         f"{max(0, archive_size - info.header_offset)} bytes from its start")
    return info


def _read_member(zf: zipfile.ZipFile, member: str, archive_size: int) -> bytes:
    try:
        return zf.read(_stored_member(zf, member, archive_size))
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ValueError(f"entry {member}: {exc}") from exc


class _Decoder:
    """Rebuilds the object tree from JSON nodes, reading each array once."""

    def __init__(self, zf: zipfile.ZipFile, archive_size: int):
        self.zf = zf
        self.archive_size = archive_size
        self.arrays: dict[int, np.ndarray] = {}
        self.tensors: list[tuple[Tensor, backend.Device]] = []

    def array(self, index) -> np.ndarray:
        if type(index) is not int:
            raise ValueError(f"array reference {index!r} is not an integer")
        if index not in self.arrays:
            self.arrays[index] = _read_array(self.zf, f"arrays/{index}.npy", self.archive_size)
        return self.arrays[index]

    def _array_of(self, node) -> np.ndarray:
        """The node's array, viewed as bfloat16 where the node says its uint16 bits are one."""
        array = self.array(node["array"])
        stored_as = node.get("dtype")
        if stored_as is None:
            return array
        if stored_as != "bfloat16" or array.dtype not in (np.uint16, dtypes.bfloat16):
            raise ValueError(f"array {node['array']} of {array.dtype} cannot be read as dtype {stored_as!r}")
        if array.dtype == np.uint16:  # one view, kept, so that an array referenced twice stays one object
            array = self.arrays[node["array"]] = array.view(dtypes.bfloat16)
        return array

    def decode(self, node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        kind = node["type"]
        if kind == "tensor":
            tensor = Tensor(self._array_of(node))
            if node["requires_grad"] is True:
                tensor.requires_grad_(True)
            self.tensors.append((tensor, backend.Device(node["device"])))
            return tensor
        if kind == "ndarray":
            return self._array_of(node)
        if kind == "scalar":
            return self._array_of(node)[()]
        if kind == "tuple":
            return tuple(self.decode(v) for v in node["items"])
        if kind in ("dict", "OrderedDict"):
            keys, values = node["keys"], node["values"]
            if len(keys) != len(values):
                raise ValueError(f"a dict node has {len(keys)} keys but {len(values)} values")
            mapping = dict if kind == "dict" else OrderedDict
            return mapping(zip((self.decode(k) for k in keys), (self.decode(v) for v in values)))
        if kind == "float" and node["value"] in _NON_FINITE:
            return float(node["value"])
        if kind == "int":
            return int(node["hex"], 16)
        raise ValueError(f"unknown node {json.dumps(node)[:80]}")


def _read_array(zf: zipfile.ZipFile, member: str, archive_size: int) -> np.ndarray:
    """One ``.npy`` entry, checked against its own header, the archive's real size and the zip's CRC."""
    info = _stored_member(zf, member, archive_size)
    try:
        with zf.open(info) as stream:
            shape, fortran_order, dtype = _npy_header(stream, member)
            nbytes = math.prod(shape) * dtype.itemsize
            if info.file_size - stream.tell() != nbytes:
                raise ValueError(f"entry {member} should hold {nbytes} bytes of {dtype} {shape} data but holds "
                                 f"{info.file_size - stream.tell()}")
            buffer = bytearray(nbytes)  # bounded: file_size fits in the archive (_stored_member)
            view = memoryview(buffer)
            filled = 0
            while filled < nbytes:  # chunks, so a big array never exists twice in memory
                chunk = stream.read(min(_READ_CHUNK, nbytes - filled))
                if not chunk:
                    raise EOFError(f"entry {member} ends after {filled} of {nbytes} bytes")
                view[filled:filled + len(chunk)] = chunk
                filled += len(chunk)
            stream.read(1)  # at the end of the entry, zipfile checks its CRC-32
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"entry {member}: {exc}") from exc
    array = np.frombuffer(buffer, dtype=dtype)
    array = array.reshape(shape[::-1]).T if fortran_order else array.reshape(shape)
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


def _npy_header(stream, member: str):
    """(shape, fortran_order, dtype) from a ``.npy`` header; object arrays (pickle) are refused."""
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except ValueError as exc:
        raise ValueError(f"entry {member} is not a valid .npy array: {exc}") from None
    if dtype.hasobject:
        raise ValueError(f"entry {member} holds Python objects, which would need pickle to load; refused")
    return shape, fortran_order, dtype


# --- devices -----------------------------------------------------------------------------------
def _placement(map_location):
    """``saved device -> target device`` for ``map_location``, checked before the file is opened."""
    if map_location is None:
        return lambda saved: saved
    if isinstance(map_location, (str, backend.Device)):
        target = backend.Device(map_location)
        return lambda saved: target
    if isinstance(map_location, dict):
        table = {backend.Device(k): backend.Device(v) for k, v in map_location.items()}
        return lambda saved: table.get(saved, saved)
    raise TypeError("map_location must be None, a device string ('cpu', 'cuda', 'cuda:N'), a distgrad.device or "
                    f"a dict mapping saved devices to devices, got {type(map_location).__name__}")


def _move_tensors(tensors, place, name: str) -> None:
    """Moves each loaded tensor to its target device; arrays shared on the host stay shared there."""
    moved: dict = {}  # (id(host array), target) -> (host array, kept alive so its id stays unique; moved array)
    for tensor, saved in tensors:
        target = place(saved)
        if target.type == "cuda" and target.index >= backend.cuda_device_count():
            raise RuntimeError(f"{name} holds a tensor saved on {saved}, to be loaded on {target}, but "
                               f"{backend.cuda_device_count()} GPU(s) are visible here; pass map_location='cpu' "
                               f"(or {{'{saved}': 'cpu'}}) to load it on the CPU")
        key = (id(tensor.array), target)
        if key not in moved:
            moved[key] = (tensor.array, backend.to_device(tensor.array, target))
        tensor.array = moved[key][1]
