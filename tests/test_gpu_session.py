"""The GPU session's summary (distgrad.bench.gpu_session) from benchmark logs, without a GPU: ratios read
from each benchmark's JSON line, W7's model FLOPs utilisation, missing and failed parts, the table."""
import json

from distgrad.bench import gpu_session
from distgrad.bench.gpt import gpt_model, preset


def _log(folder, name, line, noise="warming up\n"):
    (folder / name).write_text(noise + json.dumps(line) + "\n")


def test_the_summary_reads_every_ratio_and_computes_w7s_mfu(tmp_path):
    _log(tmp_path, "w1.json", {"epoch_time_ratio_distgrad_over_torch": 0.85})
    _log(tmp_path, "w2.json", {"step_time_ratio_distgrad_over_torch": 0.97})
    _log(tmp_path, "w3.json", {"ratio_distgrad_over_torch": 1.4})
    _log(tmp_path, "graphs.json", {"w3_graphed_ratio": 0.2, "w1_graphed_speedup": 3.1})
    _log(tmp_path, "graphs_ddp_nccl.json", {"w1_graphed_speedup": 2.5})
    _log(tmp_path, "w7.json", {"preset": "full", "distgrad": {"ms_per_step": 50.0, "tokens_per_s": 327680.0},
                               "step_time_ratio_distgrad_over_torch": 0.95})
    (tmp_path / "tests.log").write_text("....\n120 passed, 3 skipped in 80.1s\n")
    (tmp_path / "status.txt").write_text("tests 0\nw1 0\nw8 124\n")
    summary = gpu_session.summarize(str(tmp_path), "h100", gpu="NVIDIA H100 80GB HBM3", commit="abc123")
    assert {k: summary[k] for k in ("W1_ratio", "W2_ratio", "W3_ratio", "W3_graphed_ratio", "W7_ratio")} == \
        {"W1_ratio": 0.85, "W2_ratio": 0.97, "W3_ratio": 1.4, "W3_graphed_ratio": 0.2, "W7_ratio": 0.95}
    config, _ = preset("full", 84)
    expected = 327680.0 * gpu_session.gpt_flops_per_token(6, 384, 256, 84) / 66.9e12
    assert summary["W7_mfu"] == round(expected, 4) and 0.01 < expected < 1
    assert summary["W1_ddp_graphed_speedup"] == 2.5 and summary["cuda_tests"] == "120 passed, 3 skipped in 80.1s"
    assert summary["parts"] == {"tests": "ok", "w1": "ok", "w8": "timed out"}
    gpu_session.write(summary, str(tmp_path / "out"))
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(written) >= {"gpu", "date", "commit", "W1_ratio", "W2_ratio", "W3_ratio", "W3_graphed_ratio", "W7_ratio",
                            "W7_mfu"}
    table = (tmp_path / "out" / "summary.md").read_text()
    assert "| W3_graphed_ratio | 0.2 | <= 0.3 |" in table and "| w8 | timed out |" in table


def test_missing_or_broken_logs_give_null_figures(tmp_path):
    (tmp_path / "w3.json").write_text("Traceback (most recent call last):\n  boom\n")
    summary = gpu_session.summarize(str(tmp_path), "x")
    assert summary["W3_ratio"] is None and summary["W1_ratio"] is None and summary["W7_mfu"] is None
    assert "| W1_ratio | — | <= 0.9 |" in gpu_session.markdown(summary)


def test_the_flop_count_counts_the_gpts_parameters():
    import distgrad as dg
    config, _ = preset("tiny", 84)
    params = sum(p.numel() for p in gpt_model(dg, config).parameters())
    per_token = gpu_session.gpt_flops_per_token(config.n_layer, config.n_embd, config.block_size, config.vocab_size)
    assert per_token == 6 * params + 12 * config.n_layer * config.n_embd * config.block_size


def test_peaks_tell_the_pcie_h100_from_the_sxm_one():
    assert gpu_session.peak_flops("NVIDIA H100 PCIe", "float32") == 51.2e12
    assert gpu_session.peak_flops("NVIDIA H100 80GB HBM3", "bfloat16") == 989.4e12
    assert gpu_session.peak_flops("Tesla T4", "float32") is None
