"""``distgrad.profiler``: a per-rank timeline of training, in Chrome's trace-event format.

    with dg.profiler.profile("timeline/"):          # or DISTGRAD_TIMELINE=timeline/ for a whole job
        train_some_steps()
    $ distgrad-timeline merge timeline/ -o step.json   # one file, one process per rank: Perfetto opens it

Forward and backward of every module, each DDP bucket's all-reduce from launch to finish, the
optimizer step and the time spent waiting for the data loader. ``docs/distributed.md`` shows one.
The names load on first use: the data loader and DDP's reducer import ``recorder`` alone.
"""
import importlib

__all__ = ["profile", "record_function", "start", "stop", "merge_folder", "validate_trace"]

_WHERE = {"profile": "session", "start": "session", "stop": "session", "start_from_environment": "session",
          "stop_from_environment": "session", "record_function": "recorder", "merge_folder": "trace",
          "validate_trace": "trace"}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'distgrad.profiler' has no attribute '{name}'")
