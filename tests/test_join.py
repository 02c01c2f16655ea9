"""Join (uneven inputs): argument checks alone, then DDP and ZeroRedundancyOptimizer under Join on 2 and
3 ranks with 10 and 13 batches, against PyTorch's semantics and PyTorch itself (``ddp_scripts/join_cases.py``)."""
import pytest

from distgrad.distributed.algorithms import Join, Joinable, JoinHook
from ddp_scripts import join_cases
from helpers import expect_case_ok


class Counter(Joinable):
    def __init__(self):
        super().__init__()

    def join_hook(self, **kwargs):
        return JoinHook()

    @property
    def join_device(self):
        return "cpu"

    @property
    def join_process_group(self):
        return None


def test_join_needs_at_least_one_joinable():
    with pytest.raises(ValueError, match="at least one joinable"):
        Join([])


def test_join_takes_only_joinables():
    with pytest.raises(TypeError, match="Joinable"):
        Join([object()])


def test_a_joinable_outside_an_enabled_join_announces_nothing():
    assert Join.notify_join_context(Counter()) is None


def test_a_joinable_must_call_the_joinable_constructor():
    class Forgetful(Counter):
        def __init__(self):
            pass
    with pytest.raises(RuntimeError, match="calls the Joinable constructor"):
        Join.notify_join_context(Forgetful())


@pytest.mark.parametrize("case", [case.__name__ for case in join_cases.CASES])
def test_join_on_ranks(scale_out_ranks, case):
    expect_case_ok(scale_out_ranks, case)
