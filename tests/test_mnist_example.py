"""examples/mnist.py as a user meets it: checkpoints, resuming, missing or broken data, Ctrl-C.

These run on tiny MNIST-format files (256 training, 64 test images), so they need no download.
"""
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import distgrad as dg
from distgrad.data import MNIST
from helpers import load_example, write_split

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "mnist.py"


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    write_split(root / "mnist", "train", n=256, seed=1)
    write_split(root / "mnist", "t10k", n=64, seed=2)
    return root


def common(data, *extra):
    return ["--device", "cpu", "--data-dir", str(data), "--batch-size", "32", *extra]


def run_cli(*args, timeout=120):
    done = subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return done


def parameters(path):
    return {k: v.numpy() for k, v in dg.load(path)["model"].items()}


def test_a_checkpoint_into_a_missing_folder_creates_it(data, tmp_path):
    target = tmp_path / "runs" / "deep" / "mnist.ckpt"
    load_example("mnist").main(common(data, "--limit-batches", "2", "--checkpoint", str(target)))
    assert dg.load(target)["epoch"] == 1


def test_a_checkpoint_path_that_cannot_be_written_fails_before_training(data, tmp_path):
    (tmp_path / "afile").write_text("")
    done = run_cli(*common(data, "--checkpoint", str(tmp_path / "afile" / "m.ckpt")))
    assert done.returncode == 1
    assert "epoch 0" not in done.stdout
    assert done.stderr.strip().splitlines() == [f"mnist.py: cannot save checkpoints to {tmp_path}/afile/m.ckpt: "
                                                "cannot create its folder (File exists)"]


def test_resume_without_a_checkpoint_file_starts_fresh_with_one_notice(data, tmp_path):
    target = tmp_path / "new.ckpt"
    done = run_cli(*common(data, "--limit-batches", "2", "--checkpoint", str(target), "--resume"))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines() == [f"no checkpoint at {target} yet: starting from scratch"]
    assert target.exists()


def test_resume_alone_is_a_usage_error():
    done = run_cli("--resume")
    assert done.returncode == 2 and "--resume needs --checkpoint PATH" in done.stderr


def test_a_corrupt_checkpoint_fails_in_one_line_naming_it(data, tmp_path):
    target = tmp_path / "broken.ckpt"
    target.write_bytes(b"not a checkpoint")
    done = run_cli(*common(data, "--checkpoint", str(target), "--resume"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"mnist.py: {target} is not a distgrad checkpoint or is corrupt: File is not a zip file"]


def test_checkpoint_every_saves_mid_epoch_and_resuming_from_there_is_exact(data, tmp_path, monkeypatch):
    example = load_example("mnist")
    args = common(data, "--limit-batches", "6", "--epochs", "2", "--optimizer", "adam")
    example.main(args + ["--checkpoint", str(tmp_path / "straight.ckpt")])

    saved = []
    original = example.ckpt.save

    def keep_copies(state, path):
        original(state, path)
        copy = tmp_path / f"copy{len(saved)}.ckpt"
        original(state, copy)
        saved.append((state["epoch"], state["batches_done"], copy))

    monkeypatch.setattr(example.ckpt, "save", keep_copies)
    example.main(args + ["--checkpoint", str(tmp_path / "every.ckpt"), "--checkpoint-every", "4"])
    assert [(e, b) for e, b, _ in saved] == [(0, 4), (1, 0), (1, 2), (1, 6), (2, 0)]  # steps 4, 6 (end), 8, 12, end
    monkeypatch.setattr(example.ckpt, "save", original)

    mid_epoch = saved[0][2]
    resumed = example.main(args + ["--checkpoint", str(mid_epoch), "--resume"])
    for name, value in parameters(tmp_path / "straight.ckpt").items():
        np.testing.assert_array_equal(parameters(mid_epoch)[name], value)
    assert resumed["epoch"] == 1


def test_missing_mnist_is_one_line_naming_the_flag_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])  # nothing listens there
    with pytest.raises(SystemExit) as info:
        load_example("mnist").main(["--device", "cpu", "--data-dir", str(tmp_path / "nowhere")])
    assert info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"mnist.py: MNIST not found in {tmp_path}/nowhere/mnist")
    assert "--data-dir DIR or set DISTGRAD_DATA" in err[0] and "root=" not in err[0]
    assert not (tmp_path / "nowhere").exists()


def test_a_corrupt_mnist_file_is_one_line_naming_it(data, capsys):
    images = data / "mnist" / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:100])
    with pytest.raises(SystemExit):
        load_example("mnist").main(common(data))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"mnist.py: {images} is corrupt or truncated")


def test_one_epoch_writes_metrics_and_says_why_there_is_no_curve(data, tmp_path, capsys):
    load_example("mnist").main(common(data, "--limit-batches", "2", "--out", str(tmp_path / "out")))
    assert sorted(os.listdir(tmp_path / "out")) == ["metrics.json"]
    assert "curves.png needs two epochs or more" in capsys.readouterr().out


def test_ctrl_c_prints_one_short_line_and_exits_130(data):
    child = subprocess.Popen([sys.executable, str(EXAMPLE), *common(data, "--epochs", "100000")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        line = child.stdout.readline()  # the rank line: it is training now
        assert line.startswith("rank 0 of world 1")
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 130
    assert err.strip().splitlines() == ["mnist.py: interrupted"]


def test_sigusr1_to_the_launcher_checkpoints_on_every_rank_at_one_step_and_exits_0(data, tmp_path):
    """SLURM's time-limit warning (sbatch --signal=B:USR1@...), as slurm/mnist.sbatch passes it on."""
    pytest.importorskip("mpi4py")
    target = tmp_path / "m.ckpt"
    launcher = subprocess.Popen([sys.executable, "-m", "distgrad.launch", "-n", "2", str(EXAMPLE),
                                 *common(data, "--epochs", "100000", "--batch-size", "16", "--checkpoint", str(target))],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 60
        while not target.exists() and time.monotonic() < end:  # the first epoch's checkpoint: training runs
            time.sleep(0.1)
        launcher.send_signal(signal.SIGUSR1)
        out, err = launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    assert launcher.returncode == 0, err
    assert "stopping on request: checkpoint at step" in out
    state = dg.load(target)
    assert state["batches_done"] > 0 or state["epoch"] > 1


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_trains_under_autocast_and_checkpoints_the_loss_scale(data, tmp_path, amp):
    path = tmp_path / "mnist.ckpt"
    result = load_example("mnist").main(common(data, "--model", "cnn", "--amp", amp, "--checkpoint", str(path)))
    assert 0 <= result["test_accuracy"] <= 1 and np.isfinite(result["train_loss"])
    saved = dg.load(path)
    assert all(v.dtype == dg.float32 for v in saved["model"].values())
    assert saved["scaler"] == ({} if amp == "bf16" else {"scale": 2.0 ** 16, "growth_factor": 2.0, "backoff_factor": 0.5,
                                                          "growth_interval": 2000, "_growth_tracker": 8})

