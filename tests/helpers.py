"""Helpers shared by the test files (import them with ``from helpers import ...``)."""
import numpy as np

import distgrad as dg
from distgrad import backend


def host(t) -> np.ndarray:
    """The tensor's values as a NumPy array on the host, wherever the tensor lives."""
    return backend.to_device(t.array, backend.CPU)


def random_leaf(shape, device, seed: int = 0, scale: float = 1.0, dtype=None):
    """A float64 (or ``dtype``) leaf of standard-normal values times ``scale`` that requires grad."""
    values = np.random.default_rng(seed).standard_normal(shape) * scale
    return dg.tensor(values, dtype=dtype or dg.float64, device=device, requires_grad=True)


def leaf_keeping_layout(device, array):
    """A float64 leaf on ``device`` that requires grad, holding ``array`` with its dims in the same
    order in memory (a transposed array stays transposed; CuPy alone would copy it C-contiguous)."""
    array = np.asarray(array, dtype=np.float64)
    order = np.argsort([-s for s in array.strides], kind="stable")
    data = backend.to_device(np.ascontiguousarray(array.transpose(order)), dg.device(device))
    return dg.Tensor(data.transpose(tuple(np.argsort(order).tolist()))).requires_grad_()


def _pair_inputs(torch, values, device):
    """Each input for distgrad and for torch: float arrays become float64 leaves that require grad,
    other arrays plain tensors; anything else (numbers, strings, lists) is passed as it is."""
    ours, theirs, leaves = [], [], []
    for v in values:
        if isinstance(v, np.ndarray):
            grad = v.dtype.kind == "f"
            ours.append(dg.tensor(v, device=device, requires_grad=grad))
            theirs.append(torch.tensor(v, requires_grad=grad))
            if grad:
                leaves.append((ours[-1], theirs[-1]))
        else:
            ours.append(v)
            theirs.append(v)
    return ours, theirs, leaves


def _outputs(result) -> tuple:
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


def assert_matches_torch(fn, values, device, rtol: float = 1e-7, atol: float = 1e-10, backward: bool = True):
    """Runs ``fn(module, *inputs)`` with ``module`` distgrad and then torch (one lambda serves both, as
    the names agree) and checks that every output and, after a backward of the float outputs against
    the same random weights, every gradient agree. Returns distgrad's outputs."""
    torch = __import__("pytest").importorskip("torch")
    ours, theirs, leaves = _pair_inputs(torch, values, device)
    out_ours, out_theirs = _outputs(fn(dg, *ours)), _outputs(fn(torch, *theirs))
    assert len(out_ours) == len(out_theirs)
    rng = np.random.default_rng(1)
    weighted_ours, weighted_theirs = [], []
    for a, b in zip(out_ours, out_theirs):
        expected = b.detach().numpy()
        assert host(a).shape == expected.shape, (host(a).shape, expected.shape)
        np.testing.assert_allclose(host(a), expected, rtol=rtol, atol=atol)
        if backward and a.requires_grad:
            w = rng.standard_normal(expected.shape)
            weighted_ours.append((a * dg.tensor(w, device=device)).sum())
            weighted_theirs.append((b * torch.tensor(w)).sum())
    if weighted_ours:
        sum(weighted_ours).backward()
        sum(weighted_theirs).backward()
        for a, b in leaves:
            expected = np.zeros(b.shape) if b.grad is None else b.grad.numpy()
            got = np.zeros(a.shape) if a.grad is None else host(a.grad)
            np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)
    return out_ours


def assert_raises_like_torch(call, message: str, error=RuntimeError) -> None:
    """``call(module)`` raises ``error`` matching ``message`` with ``module`` distgrad and with torch."""
    pytest = __import__("pytest")
    torch = pytest.importorskip("torch")
    for module in (dg, torch):
        with pytest.raises(error, match=message):
            call(module)
