"""``TCPStore``: a small key-value store over TCP, PyTorch's ``torch.distributed.TCPStore``.

One process (``is_master=True``) serves the keys from a thread; every process, the master too, is a
client. Ranks that find each other through ``init_method="env://"`` or ``"tcp://host:port"`` trade
what they need through it: MPI's port name, NCCL's unique id. ``get`` and ``wait`` block until the
key exists (at most ``timeout``); ``add`` is an atomic counter.

A message is a code byte (the operation, or the answer's status), a count of frames, then each frame
preceded by its length (8 bytes, little-endian). Values are bytes (``set`` encodes ``str`` as UTF-8,
as PyTorch does); nothing is unpickled, so a peer cannot run code in the store's processes.
"""
from __future__ import annotations

import datetime
import socket
import struct
import threading
import time

__all__ = ["TCPStore", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = datetime.timedelta(seconds=300)  # PyTorch's default for TCPStore
_LENGTH = struct.Struct("<Q")
_SET, _GET, _ADD, _CHECK, _WAIT, _DELETE, _NUM_KEYS, _COMPARE_SET = range(8)
_OK, _TIMEOUT, _ERROR = range(3)
_WORKERS_KEY = "__distgrad_store_workers"  # each client adds 1 on connecting


def _seconds(timeout) -> float:
    return timeout.total_seconds() if isinstance(timeout, datetime.timedelta) else float(timeout)


def _as_bytes(value) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"TCPStore values are str or bytes, got {type(value).__name__}")


def _send(sock, code: int, frames) -> None:
    parts = [bytes([code]), _LENGTH.pack(len(frames))]
    for frame in frames:
        parts += [_LENGTH.pack(len(frame)), frame]
    sock.sendall(b"".join(parts))


def _receive_exactly(sock, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError("TCPStore: the connection closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _receive(sock) -> tuple[int, list]:
    code = _receive_exactly(sock, 1)[0]
    count = _LENGTH.unpack(_receive_exactly(sock, 8))[0]
    return code, [_receive_exactly(sock, _LENGTH.unpack(_receive_exactly(sock, 8))[0]) for _ in range(count)]


class _Server:
    """The keys, served by one thread per client connection."""

    def __init__(self, host: str, port: int):
        self._keys: dict[bytes, bytes] = {}
        self._changed = threading.Condition()
        self._listener = socket.create_server((host, port))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, name="distgrad-TCPStore", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(client,), name="distgrad-TCPStore-client",
                             daemon=True).start()

    def _serve(self, client) -> None:
        with client:
            try:
                while True:
                    _send(client, *self._answer(*_receive(client)))
            except (ConnectionError, OSError):
                return

    def _wait_for(self, keys: list, timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        with self._changed:
            while not all(k in self._keys for k in keys):
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def _answer(self, op: int, frames: list) -> tuple[int, list]:
        if op == _SET:
            with self._changed:
                self._keys[frames[0]] = frames[1]
                self._changed.notify_all()
            return _OK, []
        if op == _GET:
            if not self._wait_for([frames[0]], float(frames[1])):
                return _TIMEOUT, []
            with self._changed:
                return _OK, [self._keys[frames[0]]]
        if op == _ADD:
            with self._changed:
                value = int(self._keys.get(frames[0], b"0")) + int(frames[1])
                self._keys[frames[0]] = str(value).encode()
                self._changed.notify_all()
            return _OK, [str(value).encode()]
        if op == _WAIT:
            return (_OK if self._wait_for(frames[1:], float(frames[0])) else _TIMEOUT), []
        if op == _CHECK:
            with self._changed:
                return _OK, [b"1" if all(k in self._keys for k in frames) else b"0"]
        if op == _DELETE:
            with self._changed:
                return _OK, [b"1" if self._keys.pop(frames[0], None) is not None else b"0"]
        if op == _NUM_KEYS:
            with self._changed:
                return _OK, [str(len(self._keys)).encode()]
        if op == _COMPARE_SET:
            key, expected, desired = frames
            with self._changed:
                current = self._keys.get(key)
                if current == expected or (current is None and expected == b""):
                    self._keys[key] = current = desired
                    self._changed.notify_all()
                return _OK, [expected if current is None else current]
        return _ERROR, [f"unknown operation {op}".encode()]

    def close(self) -> None:
        self._listener.close()


class TCPStore:
    """A key-value store served by the master process over TCP, with PyTorch's arguments and methods.

    Args:
        host_name: where the master listens and the clients connect.
        port: its port; with ``is_master=True``, 0 picks a free one (``store.port`` tells which).
        world_size: the number of clients, the master included; with ``wait_for_workers`` the
            master's constructor returns once all have connected.
        is_master: this process serves the keys (from a thread).
        timeout: how long connecting, ``get`` and ``wait`` may take (``timedelta`` or seconds).
    """

    def __init__(self, host_name: str, port: int, world_size: int | None = None, is_master: bool = False,
                 timeout=DEFAULT_TIMEOUT, wait_for_workers: bool = True, multi_tenant: bool = False):
        self.host = host_name
        self.world_size = world_size
        self.timeout = datetime.timedelta(seconds=_seconds(timeout))
        self._server = _Server(host_name if is_master else "", int(port)) if is_master else None
        self.port = self._server.port if self._server is not None else int(port)
        self._lock = threading.Lock()  # one request at a time on this client's connection
        self._sock = self._connect(self.timeout.total_seconds())
        self.add(_WORKERS_KEY, 1)
        if is_master and wait_for_workers and world_size:
            self.wait_for_clients(int(world_size))

    def _connect(self, timeout_s: float):
        """Connects to the master, retrying while it does not listen yet (it may start after us)."""
        end = time.monotonic() + timeout_s
        while True:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=max(0.1, end - time.monotonic()))
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return sock
            except OSError as e:
                if time.monotonic() >= end:
                    raise TimeoutError(f"TCPStore: no store at {self.host}:{self.port} after {timeout_s:g} s "
                                       f"(is the master, rank 0, running? {e})") from None
                time.sleep(0.05)

    def wait_for_clients(self, world_size: int) -> None:
        """Returns once ``world_size`` clients (this one included) have connected."""
        end = time.monotonic() + self.timeout.total_seconds()
        while self.add(_WORKERS_KEY, 0) < world_size:
            if time.monotonic() >= end:
                raise TimeoutError(f"TCPStore: {self.add(_WORKERS_KEY, 0)} of {world_size} clients connected "
                                   f"within {self.timeout.total_seconds():g} s")
            time.sleep(0.01)

    def _request(self, op: int, frames: list) -> tuple[int, list]:
        with self._lock:
            _send(self._sock, op, frames)
            code, answer = _receive(self._sock)
        if code == _ERROR:
            raise RuntimeError(f"TCPStore: {answer[0].decode()}")
        return code, answer

    def _timeout_s(self, timeout=None) -> bytes:
        return repr(self.timeout.total_seconds() if timeout is None else _seconds(timeout)).encode()

    # --- PyTorch's methods -----------------------------------------------------------------------
    def set(self, key: str, value) -> None:
        self._request(_SET, [key.encode(), _as_bytes(value)])

    def get(self, key: str) -> bytes:
        """The value of ``key``, waiting for it to be set (at most the store's timeout)."""
        code, frames = self._request(_GET, [key.encode(), self._timeout_s()])
        if code == _TIMEOUT:
            raise TimeoutError(f"TCPStore.get: key {key!r} was not set within {self.timeout.total_seconds():g} s")
        return frames[0]

    def add(self, key: str, amount: int) -> int:
        """Adds ``amount`` to the integer held by ``key`` (0 when unset); returns the new value."""
        return int(self._request(_ADD, [key.encode(), str(int(amount)).encode()])[1][0])

    def compare_set(self, key: str, expected_value, desired_value) -> bytes:
        """Sets ``key`` to ``desired_value`` if it holds ``expected_value`` (or is unset and
        ``expected_value`` is empty); returns what it holds afterwards."""
        frames = [key.encode(), _as_bytes(expected_value), _as_bytes(desired_value)]
        return self._request(_COMPARE_SET, frames)[1][0]

    def wait(self, keys: list, timeout=None) -> None:
        """Returns once every key of ``keys`` is set; ``TimeoutError`` after ``timeout`` (default: the store's)."""
        code, _ = self._request(_WAIT, [self._timeout_s(timeout)] + [k.encode() for k in keys])
        if code == _TIMEOUT:
            limit = self.timeout.total_seconds() if timeout is None else _seconds(timeout)
            raise TimeoutError(f"TCPStore.wait: keys {list(keys)} were not all set within {limit:g} s")

    def check(self, keys: list) -> bool:
        """Whether every key of ``keys`` is set, without waiting."""
        return self._request(_CHECK, [k.encode() for k in keys])[1][0] == b"1"

    def delete_key(self, key: str) -> bool:
        return self._request(_DELETE, [key.encode()])[1][0] == b"1"

    def num_keys(self) -> int:
        """The number of keys set (the store keeps one of its own, as PyTorch's does)."""
        return int(self._request(_NUM_KEYS, [])[1][0])

    def set_timeout(self, timeout) -> None:
        self.timeout = datetime.timedelta(seconds=_seconds(timeout))

    def close(self) -> None:
        """Closes this client's connection, and stops serving when this is the master."""
        self._sock.close()
        if self._server is not None:
            self._server.close()

    def __repr__(self) -> str:
        return f"TCPStore(host_name={self.host!r}, port={self.port}, is_master={self._server is not None})"
