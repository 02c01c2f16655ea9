"""``Work``: the handle an asynchronous collective (``async_op=True``) returns."""
from __future__ import annotations


class Work:
    """A collective in flight: ``wait()`` before reading or writing its tensors again.

    ``poll()`` is the watchdog's question "has the transfer finished?": it never blocks, is safe from
    another thread, and leaves the finishing steps (copies back, the division of ``AVG``) to the
    caller's ``wait()`` or ``is_completed()``.
    """

    def wait(self) -> bool:
        raise NotImplementedError

    def is_completed(self) -> bool:
        raise NotImplementedError

    def poll(self) -> bool:
        raise NotImplementedError

