"""The default check of collectives, piece by piece: fingerprints, their description, and the
watchdog's look at ranks on other nodes (which the fault-injection jobs, all on one node, never need)."""
from types import SimpleNamespace

import numpy as np
import pytest

from distgrad.distributed import debug
from distgrad.distributed.reduce_op import ReduceOp
from distgrad.distributed.watchdog import Watchdog, _InFlight


@pytest.mark.parametrize("kind, arrays, details, text", [
    ("all_reduce", [np.zeros(4, np.float32)], {"op": ReduceOp.SUM}, "all_reduce(float32[4] on cpu, op=SUM)"),
    ("broadcast", [np.zeros((2, 3))], {"src": 1}, "broadcast(float64[2, 3] on cpu, src=1)"),
    ("reduce", [np.zeros((), np.int64)], {"dst": 0, "op": ReduceOp.MAX}, "reduce(int64[] on cpu, dst=0, op=MAX)"),
    ("all_reduce", [np.zeros((2, 3, 4, 5, 6))], {"op": ReduceOp.AVG},
     "all_reduce(float64[2, 3, 4, 30 in 2 more dims] on cpu, op=AVG)"),
    ("broadcast_object_list", [], {"src": 0, "length": 3}, "broadcast_object_list(src=0, length=3)"),
    ("barrier", [], {}, "barrier()"),
])
def test_a_fingerprint_describes_the_collective(kind, arrays, details, text):
    assert debug.describe(debug.fingerprint(kind, arrays, **details)) == text


def test_fingerprints_are_integers_with_a_hash_equal_on_every_rank():
    fp = debug.fingerprint("all_reduce", [np.zeros(4, np.float32)], op=ReduceOp.SUM)
    assert all(type(v) is int for v in fp)
    assert fp != debug.fingerprint("all_reduce", [np.zeros(5, np.float32)], op=ReduceOp.SUM)


def test_the_collective_check_can_be_turned_off(monkeypatch):
    assert debug.check_enabled()
    monkeypatch.setenv("DISTGRAD_COLLECTIVE_CHECK", "0")
    assert not debug.check_enabled()


def test_the_watchdog_names_a_mismatch_across_nodes_from_the_boards_rows():
    group = SimpleNamespace(name="WORLD", ranks=(0, 1, 2), timeout_s=60.0)
    mine = debug.fingerprint("all_reduce", [np.zeros(4, np.float32)], op=ReduceOp.SUM)
    other = debug.fingerprint("broadcast", [np.zeros(4, np.float32)], src=0)
    rows = [(7, {7: (hash(mine), mine)}), (7, {7: (hash(other), other), 6: (0, mine)}), None]
    entry = _InFlight({}, group, "all_reduce", 7)
    message = Watchdog(0, enabled=False).describe_mismatch(entry, rows)
    assert message == ("distgrad.distributed: rank 0: Detected mismatch between collectives on ranks: collective #7 "
                       "of group WORLD is all_reduce(float32[4] on cpu, op=SUM) on ranks [0] but "
                       "broadcast(float32[4] on cpu, src=0) on ranks [1]. Aborting all ranks.")
    rows[1] = (6, {6: (hash(mine), mine)})  # rank 1 has not reached #7 yet: nothing to say
    assert Watchdog(0, enabled=False).describe_mismatch(entry, rows) is None
