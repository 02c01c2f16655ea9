"""A tiny float64 GPT under DistributedDataParallel on every rank of ``mpiexec -n N`` (or alone).

Run as ``gpt_cases.py REPORT_DIR``; each rank writes ``REPORT_DIR/rank<r>.json`` like ``ddp_cases.py``.
The reference is one process training the same model on the global batch (N x the per-rank batch),
drawn by ``CharData.train_batch`` exactly as the ranks draw their shares.
"""
from __future__ import annotations

import os
import sys

import numpy as np

import distgrad as dg
from distgrad.bench.gpt import CharData, GPTConfig, Recipe, gpt_model, learning_rate, make_optimizer, train_step
from distgrad.distributed import DistributedDataParallel as DDP

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "distributed_scripts"))
from runner import run_cases_on_the_mpi_world  # noqa: E402

TEXT = "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer " * 8
CONFIG = dict(block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
RECIPE = Recipe(batch_size=3, warmup_steps=2)
STEPS = 4


def _model(data: CharData, tied: bool):
    dg.manual_seed(0)
    model = gpt_model(dg, GPTConfig(data.vocab_size, **CONFIG)).double()
    if tied:  # one Parameter used by the embedding and the head
        model.lm_head.weight = model.wte.weight
    return model


def _train(model, data, r: int, n: int, batch: int, wrapper=None) -> None:
    optimizer = make_optimizer(dg, model, RECIPE)
    for step in range(STEPS):
        x, y = data.train_batch(step, 0, batch, CONFIG["block_size"], r, n)
        train_step(dg, wrapper or model, optimizer, dg.tensor(x), dg.tensor(y), learning_rate(step, RECIPE, STEPS),
                   RECIPE.grad_clip)


def _ddp_matches_one_process(r: int, n: int, tied: bool):
    data = CharData(TEXT)
    reference = _model(data, tied)
    _train(reference, data, 0, 1, n * RECIPE.batch_size)
    ddp = DDP(_model(data, tied))
    _train(ddp.module, data, r, n, RECIPE.batch_size, wrapper=ddp)
    worst = max(float(np.abs(p.array - q.array).max()) for p, q in
                zip(ddp.module.parameters(), reference.parameters(), strict=True))
    assert worst <= 1e-12, f"parameters differ by {worst:g}"
    return ddp


def tiny_gpt_float64_matches_one_process_with_the_global_batch(r, n):
    _ddp_matches_one_process(r, n, tied=False)


def tied_embedding_and_head_take_one_bucket_slot_and_match_one_process(r, n):
    ddp = _ddp_matches_one_process(r, n, tied=True)
    names = [name for bucket in ddp.bucket_layout() for name in bucket]
    assert names.count("wte.weight") == 1 and "lm_head.weight" not in names, names
    assert ddp.module.lm_head.weight is ddp.module.wte.weight


CASES = [tiny_gpt_float64_matches_one_process_with_the_global_batch,
         tied_embedding_and_head_take_one_bucket_slot_and_match_one_process]
CASE_NAMES = [case.__name__ for case in CASES]


if __name__ == "__main__":
    run_cases_on_the_mpi_world(CASES, timeout=30)
