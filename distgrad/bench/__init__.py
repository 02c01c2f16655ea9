"""``distgrad.bench``: the one home of distgrad's benchmarks (``docs/benchmarks.md``).

``workloads`` builds the models W1, W2 and a synthetic MLP, in distgrad or as PyTorch twins
(``frameworks``); ``timing`` holds the clocks, ``threads`` the thread policy, ``machine`` the facts
recorded beside every figure and ``metrics`` the figures' definitions. ``mnist``, ``autograd_overhead``,
``throughput``, ``allreduce`` and ``ddp`` measure, on ranks started by ``ranks`` and ``worker``;
``benchmarks/*.py`` and ``distgrad-bench`` (``cli``, ``sections``, ``report``, ``plots``, ``summary``,
with the model of scale in ``costmodel`` and ``scale``; see ``docs/scaling.md``) are their front ends.
"""
