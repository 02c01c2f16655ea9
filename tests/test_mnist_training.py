"""End to end: examples/mnist.py trains the W1 MLP on the real MNIST (skipped without the data)."""
import importlib.util
import json
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = os.environ.get("DISTGRAD_DATA")
needs_mnist = pytest.mark.skipif(not DATA or not (pathlib.Path(DATA) / "mnist").is_dir(),
                                 reason="set DISTGRAD_DATA to a folder holding mnist/ (CI uses ../shared/data)")


def load_example():
    spec = importlib.util.spec_from_file_location("mnist_example", ROOT / "examples" / "mnist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_mnist
def test_mlp_one_epoch_reaches_95_percent(tmp_path):
    result = load_example().main(["--model", "mlp", "--device", "cpu", "--epochs", "1", "--out", str(tmp_path)])
    assert result["test_accuracy"] > 0.95
    history = json.loads((tmp_path / "metrics.json").read_text())
    assert len(history) == 1 and history[0]["epoch"] == 0


@needs_mnist
def test_resume_continues_bit_exactly(tmp_path):
    example = load_example()
    common = ["--model", "mlp", "--device", "cpu", "--limit-batches", "30", "--seed", "3"]
    straight = example.main(common + ["--epochs", "2", "--checkpoint", str(tmp_path / "a.ckpt")])
    example.main(common + ["--epochs", "1", "--checkpoint", str(tmp_path / "b.ckpt")])
    resumed = example.main(common + ["--epochs", "2", "--checkpoint", str(tmp_path / "b.ckpt"), "--resume"])
    assert resumed["train_loss"] == straight["train_loss"]
    assert resumed["test_accuracy"] == straight["test_accuracy"]
