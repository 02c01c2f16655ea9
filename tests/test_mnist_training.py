"""End to end: examples/mnist.py trains the W1 MLP on the real MNIST (skipped without the data)."""
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
from helpers import load_example

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = os.environ.get("DISTGRAD_DATA")
needs_mnist = pytest.mark.skipif(not DATA or not (pathlib.Path(DATA) / "mnist").is_dir(),
                                 reason="set DISTGRAD_DATA to a folder holding mnist/ (CI uses ../shared/data)")


@needs_mnist
def test_mlp_one_epoch_reaches_95_percent(tmp_path):
    result = load_example("mnist").main(["--model", "mlp", "--device", "cpu", "--epochs", "1", "--out", str(tmp_path)])
    assert result["test_accuracy"] > 0.95
    history = json.loads((tmp_path / "metrics.json").read_text())
    assert len(history) == 1 and history[0]["epoch"] == 0


@needs_mnist
def test_resume_continues_bit_exactly(tmp_path):
    example = load_example("mnist")
    common = ["--model", "mlp", "--device", "cpu", "--limit-batches", "30", "--seed", "3"]
    straight = example.main(common + ["--epochs", "2", "--checkpoint", str(tmp_path / "a.ckpt")])
    example.main(common + ["--epochs", "1", "--checkpoint", str(tmp_path / "b.ckpt")])
    resumed = example.main(common + ["--epochs", "2", "--checkpoint", str(tmp_path / "b.ckpt"), "--resume"])
    assert resumed["train_loss"] == straight["train_loss"]
    assert resumed["test_accuracy"] == straight["test_accuracy"]


def run_example(command):
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    loss = float(re.search(r"epoch 0: loss ([0-9.]+)", done.stdout).group(1))
    accuracy = float(re.search(r"final test accuracy ([0-9.]+)%", done.stdout).group(1))
    return done.stdout, loss, accuracy


@needs_mnist
def test_two_ranks_follow_one_process_on_the_same_global_batch():
    """README's main job, shortened: 2 ranks x 32 samples must track 1 process x 64 samples."""
    pytest.importorskip("mpi4py")
    common = ["examples/mnist.py", "--model", "mlp", "--device", "cpu", "--epochs", "1", "--limit-batches", "60"]
    two, loss2, acc2 = run_example([sys.executable, "-m", "distgrad.launch", "-n", "2"] + common + ["--batch-size", "32"])
    _, loss1, acc1 = run_example([sys.executable] + common + ["--batch-size", "64"])
    assert "rank 0 of world 2" in two and "rank 1 of world 2" in two
    assert abs(loss2 - loss1) < 2e-3 and abs(acc2 - acc1) < 0.3
