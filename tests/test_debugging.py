"""The single-device debugging tools on a real model: anomaly mode, viz, Module gradcheck, determinism."""
import numpy as np
import pytest

import distgrad as dg
import distgrad.nn.functional as F
from distgrad import nn


def small_net():
    dg.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def test_anomaly_mode_points_at_the_forward_line_of_a_model_that_makes_nan():
    model = small_net()
    x = dg.randn(5, 4)
    with dg.autograd.detect_anomaly():
        hidden = model(x)
        broken = hidden.sqrt()  # negative inputs: NaN in forward, and NaN gradients in backward
        with pytest.raises(RuntimeError) as info:
            broken.sum().backward()
    message = str(info.value)
    assert "SqrtBackward" in message and "nan" in message
    assert "broken = hidden.sqrt()" in message


def test_viz_draws_the_model_graph_with_named_parameters():
    model = small_net()
    loss = F.cross_entropy(model(dg.randn(5, 4)), dg.tensor([0, 1, 2, 0, 1]))
    dot = dg.viz.to_dot(loss, params=dict(model.named_parameters()))
    assert dot.startswith("digraph")
    for name in ("0.weight", "0.bias", "2.weight", "2.bias", "LinearBackward", "TanhBackward"):
        assert name in dot


def test_gradcheck_of_a_users_module_in_float64():
    model = small_net().double()
    x = dg.randn(3, 4, dtype=dg.float64, requires_grad=True)
    assert dg.autograd.gradcheck(lambda t: model(t), (x,))


def test_gradcheck_reports_a_wrong_gradient():
    class WrongSquare(dg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.array ** 2

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * x  # should be 2 * g * x

    x = dg.randn(3, dtype=dg.float64, requires_grad=True)
    with pytest.raises(dg.GradcheckError, match="Jacobian mismatch for output 0 with respect to input 0"):
        dg.autograd.gradcheck(WrongSquare.apply, (x,))


def train_briefly(seed):
    dg.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))
    opt = dg.optim.Adam(model.parameters(), lr=1e-2)
    data = dg.data.TensorDataset(dg.randn(64, 6), dg.randint(0, 2, (64,)))
    for x, y in dg.data.DataLoader(data, batch_size=8, shuffle=True):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.detach().numpy().copy() for p in model.parameters()]


def test_same_seed_gives_a_bit_identical_cpu_run():
    first, second = train_briefly(7), train_briefly(7)
    for a, b in zip(first, second):
        assert np.array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, train_briefly(8)))


@pytest.mark.cuda
def test_memory_report_lists_the_largest_gpu_tensors():
    if not dg.cuda.is_available():
        pytest.skip("needs CuPy and a GPU")
    big = dg.zeros(1024, 1024, device="cuda")  # 4 MiB
    report = dg.cuda.memory_report(limit=3)
    assert "pool used" in report and "[1024, 1024]" in report
    assert dg.cuda.largest_tensors(1)[0][0] >= big.array.nbytes
