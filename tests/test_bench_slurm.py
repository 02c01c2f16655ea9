"""The SLURM sweep template on a real one-node cluster (started here, ~5 s; skipped without SLURM)."""
import json
import os
import subprocess

import pytest

pytest.importorskip("mpi4py")

from distributed_scripts import slurm_cluster  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--skip", "mnist,autograd,zero", "--max-bytes", "256", "--step-factor", "8", "--iters", "2", "--models", "mlp",
        "--batch", "mlp=8", "--steps", "2", "--warmup-steps", "1", "--bucket-caps", "1", "--repeats", "1",
        "--gpus", "8"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from slurm_cluster.running_cluster(str(tmp_path_factory.mktemp("slurm")))


def test_the_sweep_writes_a_folder_per_node_count_and_a_summary(cluster, tmp_path):
    done = subprocess.run(["sbatch", "--wait", "--nodes=1", "--ntasks-per-node=2",
                           os.path.join(ROOT, "slurm", "bench_sweep.sbatch")] + TINY,
                          env=cluster.env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    log = "".join(p.read_text() for p in tmp_path.glob("distgrad-bench-sweep-*.out"))
    assert done.returncode == 0, done.stdout + done.stderr + log
    [sweep] = tmp_path.glob("bench-sweep-*")
    results = json.loads((sweep / "nodes-1" / "results.json").read_text())
    assert {r["world_size"] for r in results["allreduce"]["rows"]} == {1, 2}
    assert all(r["correct"] for r in results["allreduce"]["rows"])
    assert "| 2 |" in (sweep / "summary.md").read_text()
