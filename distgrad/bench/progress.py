"""A progress bar for long sweeps: tqdm on a terminal, one plain line per step otherwise (logs, CI)."""
from __future__ import annotations

import sys


class Progress:
    """Counts ``total`` steps of a sweep; ``advance(label)`` after each one."""

    def __init__(self, total: int, description: str, stream=None, enabled: bool = True):
        self.total, self.done, self.description = total, 0, description
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self._bar = None
        if enabled and self.stream.isatty():
            try:
                from tqdm import tqdm
                self._bar = tqdm(total=total, desc=description, file=self.stream, leave=False, dynamic_ncols=True)
            except ImportError:
                pass

    def advance(self, label: str = "") -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.set_postfix_str(label, refresh=False)
            self._bar.update(1)
        elif self.enabled:
            print(f"[{self.description}] {self.done}/{self.total} {label}".rstrip(), file=self.stream, flush=True)

    def note(self, label: str) -> None:
        """Shows ``label`` (news from inside a step) without counting a step."""
        if self._bar is not None:
            self._bar.set_postfix_str(label)
        elif self.enabled:
            print(f"[{self.description}] {label}", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
