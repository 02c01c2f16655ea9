"""``distgrad.bench``: the scaling benchmarks behind ``distgrad-bench`` (see ``docs/scaling.md``).

``metrics`` defines the figures; ``allreduce``, ``ddp``, ``autograd_overhead`` and ``mnist`` measure
them on ranks started by ``ranks``; ``costmodel`` and ``scale`` hold the alpha-beta model of scale;
``report``, ``plots`` and ``summary`` write the results folder; ``cli`` is the command line.
"""
