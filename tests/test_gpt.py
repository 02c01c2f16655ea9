"""The GPT showcase: data, schedule, the distgrad/PyTorch twins, examples/gpt.py (resume, sampling, ranks)."""
import json
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

import distgrad as dg
from distgrad.bench.gpt import (CharData, GPTConfig, Recipe, gpt_model, learning_rate, make_optimizer, mixed_precision,
                                train_step)
from helpers import expect_case_ok, host, load_example

ROOT = pathlib.Path(__file__).resolve().parents[1]
TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 40
SMALL = GPTConfig(vocab_size=0, block_size=8, n_layer=2, n_head=2, n_embd=16)


# --- data and schedule ----------------------------------------------------------------------------
def test_char_data_round_trips_and_holds_out_the_last_tenth():
    data = CharData(TEXT)
    assert data.vocab == "".join(sorted(set(TEXT))) and data.decode(data.ids) == TEXT
    assert data.split_at == int(0.9 * len(TEXT))
    x, y = data.windows("val", np.array([0, 5]), 8)
    np.testing.assert_array_equal(x[0], data.ids[data.split_at:data.split_at + 8])
    np.testing.assert_array_equal(y[:, :-1], x[:, 1:])
    with pytest.raises(ValueError, match="missing from the vocabulary"):
        data.encode("~")


def test_ranks_take_slices_of_the_global_batch_and_batches_repeat_per_step():
    data = CharData(TEXT)
    whole = data.train_batch(step=3, seed=1, batch_size=6, block_size=8)
    shares = [data.train_batch(3, 1, 2, 8, rank, 3) for rank in range(3)]
    np.testing.assert_array_equal(np.concatenate([s[0] for s in shares]), whole[0])
    np.testing.assert_array_equal(data.train_batch(3, 1, 6, 8)[1], whole[1])
    assert not np.array_equal(data.train_batch(4, 1, 6, 8)[0], whole[0])


def test_learning_rate_warms_up_then_decays_by_cosine_to_the_minimum():
    recipe = Recipe(lr=1e-3, min_lr=1e-4, warmup_steps=10)
    assert learning_rate(0, recipe, 100) == pytest.approx(1e-3 / 11)
    assert learning_rate(9, recipe, 100) == pytest.approx(1e-3 * 10 / 11)
    assert learning_rate(10, recipe, 100) == pytest.approx(1e-3)
    assert learning_rate(55, recipe, 100) == pytest.approx(5.5e-4)
    assert learning_rate(100, recipe, 100) == pytest.approx(1e-4)


# --- the twins ------------------------------------------------------------------------------------
def test_the_same_source_builds_twins_that_train_alike_in_float64():
    torch = pytest.importorskip("torch")
    data = CharData(TEXT)
    config = GPTConfig(data.vocab_size, **{k: v for k, v in SMALL.as_dict().items() if k != "vocab_size"})
    dg.manual_seed(0)
    ours = gpt_model(dg, config).double()
    theirs = gpt_model(torch, config).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict({k: torch.tensor(host(v)) for k, v in ours.state_dict().items()})
    recipe = Recipe(batch_size=4, warmup_steps=1)
    optimizers = make_optimizer(dg, ours, recipe), make_optimizer(torch, theirs, recipe)
    for step in range(3):
        x, y = data.train_batch(step, 0, recipe.batch_size, config.block_size)
        lr = learning_rate(step, recipe, 3)
        ours_loss = train_step(dg, ours, optimizers[0], dg.tensor(x), dg.tensor(y), lr, recipe.grad_clip)
        theirs_loss = train_step(torch, theirs, optimizers[1], torch.tensor(x), torch.tensor(y), lr, recipe.grad_clip)
        assert ours_loss == pytest.approx(theirs_loss, rel=1e-12)
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(host(p), q.detach().numpy(), rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_the_twins_train_alike_under_autocast(amp):
    torch = pytest.importorskip("torch")
    data = CharData(TEXT)
    config = GPTConfig(data.vocab_size, **{k: v for k, v in SMALL.as_dict().items() if k != "vocab_size"})
    dg.manual_seed(0)
    ours, theirs = gpt_model(dg, config), gpt_model(torch, config)
    theirs.load_state_dict({k: torch.tensor(host(v)) for k, v in ours.state_dict().items()})
    recipe = Recipe(batch_size=4, warmup_steps=1)
    runs = [(lib, model, make_optimizer(lib, model, recipe), mixed_precision(lib, "cpu", amp))
            for lib, model in ((dg, ours), (torch, theirs))]
    for step in range(3):
        x, y = data.train_batch(step, 0, recipe.batch_size, config.block_size)
        lr = learning_rate(step, recipe, 3)
        ours_loss, theirs_loss = (train_step(lib, model, optimizer, lib.tensor(x), lib.tensor(y), lr, recipe.grad_clip,
                                             precision) for lib, model, optimizer, precision in runs)
        assert ours_loss == pytest.approx(theirs_loss, rel=1e-2)
    assert runs[0][3].scaler.state_dict() == runs[1][3].scaler.state_dict()
    assert all(p.dtype == dg.float32 and p.grad.dtype == dg.float32 for p in ours.parameters())


def test_nanogpt_initialisation_and_no_decay_on_gains():
    data = CharData(TEXT)
    config = GPTConfig(data.vocab_size, n_layer=8, n_embd=64)
    model = gpt_model(dg, config)
    assert abs(float(host(model.wte.weight).std()) - 0.02) < 0.002
    assert abs(float(host(model.h[0].attn.c_proj.weight).std()) - 0.02 / 4) < 0.001
    groups = make_optimizer(dg, model, Recipe()).param_groups
    assert all(p.ndim == 2 for p in groups[0]["params"]) and groups[0]["weight_decay"] == 0.1
    assert all(p.ndim == 1 for p in groups[1]["params"]) and groups[1]["weight_decay"] == 0.0


# --- examples/gpt.py ------------------------------------------------------------------------------
@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT * 3)
    return str(path)


def _quick(text_file, *extra):
    return ["--data", text_file, "--device", "cpu", "--batch-size", "2", "--eval-iters", "2", "--eval-interval", "2",
            "--tokens", "5", *extra]


def test_resume_continues_exactly_and_sample_reads_the_checkpoint(tmp_path, text_file, capsys):
    example = load_example("gpt")
    straight = example.main(_quick(text_file, "--steps", "5", "--out", str(tmp_path / "out")))
    checkpoint = str(tmp_path / "gpt.dg")
    example.main(_quick(text_file, "--steps", "5", "--stop-at", "3", "--checkpoint", checkpoint))
    assert dg.load(checkpoint)["step"] == 2
    resumed = example.main(_quick(text_file, "--steps", "5", "--checkpoint", checkpoint, "--resume"))
    assert resumed == {**straight, "tokens_per_s": resumed["tokens_per_s"],
                       "seconds_per_step": resumed["seconds_per_step"]}
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert [h["step"] for h in metrics["history"]] == [0, 2, 4] and metrics["framework"] == "distgrad"
    assert (tmp_path / "out" / "curves.png").exists()
    capsys.readouterr()
    example.main(["--sample", "--checkpoint", checkpoint, "--tokens", "20", "--prompt", "All:"])
    sample = capsys.readouterr().out
    assert sample.startswith("All:") and len(sample.rstrip("\n")) >= 24


def test_amp_fp16_resumes_exactly_with_its_loss_scale(tmp_path, text_file):
    example = load_example("gpt")
    straight = example.main(_quick(text_file, "--steps", "4", "--amp", "fp16"))
    checkpoint = str(tmp_path / "gpt.dg")
    example.main(_quick(text_file, "--steps", "4", "--stop-at", "3", "--checkpoint", checkpoint, "--amp", "fp16"))
    assert dg.load(checkpoint)["scaler"]["scale"] == 2.0 ** 16
    resumed = example.main(_quick(text_file, "--steps", "4", "--checkpoint", checkpoint, "--resume", "--amp", "fp16"))
    assert resumed["val_loss"] == straight["val_loss"]


def test_example_under_two_ranks_follows_one_process(text_file):
    pytest.importorskip("mpi4py")

    def final_loss(command, batch):
        command += ["examples/gpt.py", *_quick(text_file, "--steps", "4"), "--batch-size", batch]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout, float(re.search(r"final val loss ([0-9.]+)", done.stdout).group(1))
    two, loss2 = final_loss([sys.executable, "-m", "distgrad.launch", "-n", "2"], "2")
    _, loss1 = final_loss([sys.executable], "4")
    assert "rank 1 of world 2" in two
    assert abs(loss2 - loss1) < 1e-4


# --- a float64 GPT under DDP on real ranks --------------------------------------------------------
@pytest.fixture(scope="module", params=(1, 2), ids=lambda n: f"world{n}")
def gpt_ranks(request, tmp_path_factory):
    pytest.importorskip("mpi4py")
    from ddp_scripts import gpt_cases
    from distributed_scripts import runner

    n, report_dir = request.param, str(tmp_path_factory.mktemp(f"gpt_world{request.param}"))
    finished = runner.run(runner.world_command(n, [sys.executable, gpt_cases.__file__, report_dir]), limit_s=120)
    return runner.reports_of(finished, report_dir, n)


@pytest.mark.parametrize("case", ["tiny_gpt_float64_matches_one_process_with_the_global_batch",
                                  "tied_embedding_and_head_take_one_bucket_slot_and_match_one_process"])
def test_gpt_under_ddp(gpt_ranks, case):
    expect_case_ok(gpt_ranks, case)


# --- the W7 measurements --------------------------------------------------------------------------
@pytest.fixture
def torch_one_thread():
    """PyTorch on one thread: on a loaded 2-core machine its two threads make small steps 10x slower."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_step_times_alternate_both_twins_and_the_twin_curve_follows_the_example(tmp_path, text_file,
                                                                                torch_one_thread):
    from distgrad.bench import gpt_runs
    times = gpt_runs.step_times(GPTConfig(11, **{k: v for k, v in SMALL.as_dict().items() if k != "vocab_size"}),
                                Recipe(batch_size=2), steps=2, warmup=1, rounds=2)
    assert {name: len(t) for name, t in times.items()} == {"distgrad": 4, "torch": 4}
    data = CharData.from_file(text_file)
    twin = gpt_runs.twin_curve(data, "tiny", 3, log=lambda line: None, batch_size=2, eval_interval=2, eval_iters=2)
    ours = load_example("gpt").main(_quick(text_file, "--steps", "3"))
    assert [h["step"] for h in twin] == [0, 2]
    assert twin[-1]["val_loss"] == pytest.approx(ours["val_loss"], abs=1e-4)  # same weights, same batches
    gpt_runs.plot_curves({"distgrad": twin, "torch": twin}, str(tmp_path / "curves.png"))
    assert (tmp_path / "curves.png").stat().st_size > 1000
