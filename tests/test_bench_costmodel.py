"""The alpha-beta model's arithmetic against cases computed by hand, and its validation helpers."""
from dataclasses import replace

import pytest

from distgrad.bench import costmodel as cm
from distgrad.bench import scale

MiB = 2**20


def test_ring_allreduce_is_2_p_minus_1_alpha_plus_2_p_minus_1_over_p_n_over_beta():
    link = cm.Link.from_units(alpha_us=10, beta_GBps=10)
    # 2*3*10us + 2*(3/4)*1e9 B / 1e10 B/s = 60 us + 0.15 s
    assert cm.ring_allreduce_s(1e9, 4, link) == pytest.approx(0.15006)
    assert cm.ring_allreduce_s(1e9, 1, link) == 0.0


def test_hierarchical_allreduce_adds_the_node_and_network_phases():
    intra, inter = cm.Link.from_units(1, 100), cm.Link.from_units(10, 10)
    # in the node: 2*3*1us + 2*(3/4)*1e9/1e11 = 6 us + 15 ms
    # across 2 nodes: 2*1*10us + 2*(1/2)*1e9/1e10 = 20 us + 100 ms
    assert cm.hierarchical_allreduce_s(1e9, nodes=2, per_node=4, intra=intra, inter=inter) == pytest.approx(0.115026)
    assert cm.hierarchical_allreduce_s(1e9, nodes=1, per_node=4, intra=intra, inter=inter) == \
        pytest.approx(cm.ring_allreduce_s(1e9, 4, intra))


def test_cluster_allreduce_uses_the_node_link_inside_a_node_and_the_network_across():
    intra, inter = cm.Link.from_units(1, 100), cm.Link.from_units(10, 10)
    assert cm.cluster_allreduce_s(1e6, 8, 8, intra, inter, True) == pytest.approx(cm.ring_allreduce_s(1e6, 8, intra))
    assert cm.cluster_allreduce_s(1e6, 16, 8, intra, inter, False) == pytest.approx(cm.ring_allreduce_s(1e6, 16, inter))
    # small messages: the hierarchical variant pays 2(N-1) network latencies instead of 2(p-1)
    flat = cm.cluster_allreduce_s(1e3, 1024, 8, intra, inter, hierarchical=False)
    tiered = cm.cluster_allreduce_s(1e3, 1024, 8, intra, inter, hierarchical=True)
    assert tiered < flat / 5


def test_ddp_buckets_start_with_a_small_one_then_fill_to_the_cap():
    assert cm.ddp_bucket_bytes(100 * MiB, 25 * MiB) == [MiB, 25 * MiB, 25 * MiB, 25 * MiB, 24 * MiB]
    assert cm.ddp_bucket_bytes(100 * MiB, None) == [100 * MiB]
    assert cm.ddp_bucket_bytes(3 * MiB, MiB // 2) == [MiB // 2] * 6


def test_without_overlap_every_allreduce_follows_backward():
    compute = cm.StepCompute(forward_s=1.0, backward_s=2.0, optimizer_s=0.5)
    step = cm.predict_step(compute, [1, 1], lambda n: 0.5, overlap=False)
    assert (step.step_s, step.allreduce_s, step.exposed_s) == (4.5, 1.0, 1.0)
    assert step.efficiency == pytest.approx(3.5 / 4.5)


def test_with_overlap_a_bucket_starts_when_its_gradients_and_the_channel_are_ready():
    compute = cm.StepCompute(1.0, 2.0, 0.5)
    # halves of the gradients ready at 1.0 and 2.0; all-reduces of 0.5: done at 1.5 and 2.5
    assert cm.predict_step(compute, [1, 1], lambda n: 0.5, overlap=True).step_s == pytest.approx(4.0)
    # all-reduces of 3.0: 1.0 -> 4.0, then 4.0 -> 7.0, 5.0 after backward ends
    assert cm.predict_step(compute, [1, 1], lambda n: 3.0, overlap=True).exposed_s == pytest.approx(5.0)
    # one bucket cannot overlap anything
    assert cm.predict_step(compute, [2], lambda n: 0.5, overlap=True).step_s == pytest.approx(4.0)


def test_backward_is_two_thirds_of_a_given_compute_time():
    compute = cm.StepCompute.from_total(0.3, optimizer_s=0.05)
    assert (compute.forward_s, compute.backward_s, compute.total_s) == pytest.approx((0.1, 0.2, 0.35))


def test_fit_recovers_alpha_and_beta_from_exact_ring_times():
    truth = cm.Link.from_units(alpha_us=5, beta_GBps=3)
    sizes = [4 << k for k in range(0, 26, 2)]
    fitted = cm.fit_link(sizes, [cm.ring_allreduce_s(n, 4, truth) for n in sizes], 4)
    assert fitted.alpha_s == pytest.approx(truth.alpha_s, rel=1e-6)
    assert fitted.beta_Bps == pytest.approx(truth.beta_Bps, rel=1e-6)
    with pytest.raises(ValueError, match="at least 2 ranks"):
        cm.fit_link(sizes, sizes, 1)


def test_fit_takes_beta_from_the_large_messages_where_gradients_travel():
    fast, slow = cm.Link.from_units(2, 9), cm.Link.from_units(2, 3)  # in cache below 1 MiB, from memory above
    sizes = [4 << k for k in range(0, 27)]
    times = [cm.ring_allreduce_s(n, 2, fast if n < 2**20 else slow) for n in sizes]
    fitted = cm.fit_link(sizes, times, 2)
    assert fitted.beta_Bps == pytest.approx(slow.beta_Bps, rel=1e-3)
    assert fitted.alpha_s == pytest.approx(2e-6, rel=1e-3)


def test_ddp_validation_predicts_each_point_from_alone_and_loaded_compute():
    one = {"model": "m", "per_rank_batch": 8, "world_size": 1, "forward_ms": 1.0, "backward_compute_ms": 2.0,
           "optimizer_ms": 0.5, "step_ms": 3.5}
    two = {**one, "world_size": 2, "bucket_cap_mb": 25, "buckets": [10**6], "step_ms": 5.0, "backward_compute_ms": 2.5,
           "plain_forward_ms": 1.5, "plain_backward_ms": 2.0, "plain_optimizer_ms": 0.5, "allreduce_ms": 1.0}
    link = cm.Link.from_units(alpha_us=0, beta_GBps=1)  # 10^6 bytes on 2 ranks: 1 ms
    [row] = scale.validate_ddp([one, two], {2: link})
    assert row["predicted_alone_serial_ms"] == pytest.approx(4.5)
    assert row["error_alone_serial"] == pytest.approx(4.5 / 5.0 - 1)
    assert row["predicted_alone_overlap_ms"] == pytest.approx(4.5)  # a single bucket: nothing to overlap
    assert row["predicted_loaded_serial_ms"] == pytest.approx(5.0)
    assert row["error_loaded_overlap"] == pytest.approx(0.0)
    assert row["ddp_extra_backward_ms"] == pytest.approx(0.5)
    assert row["predicted_allreduce_ms"] == pytest.approx(1.0)


def test_anchors_give_their_published_efficiency_at_the_step_time_reported_for_it():
    for anchor, row in zip(scale.ANCHORS, scale.anchor_rows()):
        assert 0 < row["predicted_efficiency"] < 1
        [rerun] = scale.anchor_rows([replace(anchor, per_gpu_step_s=row["step_s_matching_published"])])
        assert rerun["predicted_efficiency"] == pytest.approx(anchor.published_efficiency, abs=1e-6)


def test_predictions_inside_one_node_use_the_node_link():
    workload = {"w": {"compute": cm.StepCompute(0.01, 0.02, 0.0), "grad_bytes": 10**8, "batch": 32}}
    nvlink, ib = cm.PRESETS["nvlink"], cm.PRESETS["ib100"]
    rows = scale.prediction_rows(workload, {"ib100": (nvlink, ib)}, gpus_per_node=8, gpu_counts=(8, 64),
                                 configurations=(scale.WORST_CASE,))
    expected_step = 0.03 + cm.ring_allreduce_s(10**8, 8, nvlink)
    assert rows[0]["step_ms"] == pytest.approx(1e3 * expected_step)
    assert rows[0]["samples_per_s"] == pytest.approx(8 * 32 / expected_step)
    assert rows[1]["efficiency"] < rows[0]["efficiency"]



def test_a_reduce_scatter_or_all_gather_is_half_a_ring_all_reduce():
    link = cm.Link.from_units(alpha_us=10, beta_GBps=10)
    # 3*10us + (3/4)*1e9 B / 1e10 B/s
    assert cm.ring_reduce_scatter_s(1e9, 4, link) == pytest.approx(0.07503)


def test_zero_shards_the_optimizer_and_adds_an_all_gather_after_it():
    compute = cm.StepCompute(forward_s=1.0, backward_s=2.0, optimizer_s=0.6)
    # stage 1: 1 + 2 + 0.6 / 3, then all-reduces of 0.5 + 0.5, then the all-gather of 2 bytes: 0.5 * 2 / 2
    one = cm.predict_zero_step(compute, [1, 1], lambda n: 0.5 * n, world_size=3, stage=1, overlap=False)
    assert (one.step_s, one.compute_s, one.allreduce_s, one.exposed_s) == pytest.approx((4.7, 3.6, 1.5, 1.5))
    # stage 2: reduce-scatters of half an all-reduce each, 0.25 + 0.25
    two = cm.predict_zero_step(compute, [1, 1], lambda n: 0.5 * n, world_size=3, stage=2, overlap=False)
    assert two.step_s == pytest.approx(4.2)
    alone = cm.predict_zero_step(compute, [2], lambda n: 0.0, world_size=1, stage=2, overlap=True)
    assert alone.step_s == pytest.approx(compute.total_s)
    with pytest.raises(ValueError, match="stage must be 1 or 2"):
        cm.predict_zero_step(compute, [1], lambda n: 0.0, world_size=2, stage=3, overlap=True)


def test_predictions_cover_the_zero_configurations():
    workloads = {"w": {"compute": cm.StepCompute(0.03, 0.06, 0.01), "grad_bytes": 100 * MiB}}
    network = cm.Link.from_units(5, 22)
    rows = scale.prediction_rows(workloads, {"ib200": (cm.PRESETS["nvlink"], network)}, 8, gpu_counts=(16,))
    by_label = {row["configuration"]: row for row in rows}
    assert set(by_label) == {c["label"] for c in scale.CONFIGURATIONS}
    ddp, zero2 = by_label[scale.DDP_DEFAULT["label"]], by_label[scale.ZERO_2["label"]]
    assert zero2["compute_ms"] == ddp["compute_ms"]
    assert zero2["step_ms"] != ddp["step_ms"]


def test_the_leader_variant_pays_the_node_all_reduce_twice():
    intra, inter = cm.Link.from_units(1, 100), cm.Link.from_units(10, 10)
    assert cm.leader_allreduce_s(1e9, nodes=2, per_node=4, intra=intra, inter=inter) == pytest.approx(
        2 * cm.ring_allreduce_s(1e9, 4, intra) + cm.ring_allreduce_s(1e9, 2, inter))
    # one rank per node: the leaders' all-reduce alone, which is the flat ring across the nodes
    assert cm.leader_allreduce_s(1e6, nodes=8, per_node=1, intra=intra, inter=inter) == \
        pytest.approx(cm.ring_allreduce_s(1e6, 8, inter))


def test_hierarchical_rows_are_compared_with_flat_rows_and_the_model():
    link = cm.Link.from_units(5, 2)

    def row(world, nbytes, algorithm, time_us=None):
        t = time_us if time_us is not None else cm.ring_allreduce_s(nbytes, world, link) * 1e6
        return {"backend": "mpi", "device": "cpu", "dtype": "float32", "world_size": world, "bytes": nbytes,
                "correct": True, "time_us": t, "algorithm": algorithm,
                "ranks_per_node": 2 if algorithm != "flat" else None}

    sizes = [4, 64, 1024, 2 * MiB, 8 * MiB]
    rows = [row(w, n, "flat") for w in (2, 4) for n in sizes] + [row(4, n, "hierarchical", 100.0) for n in sizes]
    table = scale.hierarchical_comparison(rows)
    assert len(table) == len(sizes) and {e["nodes"] for e in table} == {2}
    largest = table[-1]
    assert largest["ratio"] == pytest.approx(100.0 / (cm.ring_allreduce_s(8 * MiB, 4, link) * 1e6))
    assert largest["model_flat_us"] == pytest.approx(cm.ring_allreduce_s(8 * MiB, 4, link) * 1e6, rel=1e-3)
    assert largest["model_hierarchical_us"] == pytest.approx(3 * cm.ring_allreduce_s(8 * MiB, 2, link) * 1e6, rel=1e-3)
    assert all(r["world_size"] in (2, 4) for r in rows if r["algorithm"] == "flat")
    assert set(scale.fit_networks(rows)) == {2, 4}  # fitted on flat rows only
