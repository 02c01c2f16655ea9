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


def _pair_inputs(torch, values, device, constants=()):
    """Each input for distgrad and for torch: float arrays become float64 leaves that require grad (but
    those at the positions in ``constants``), other arrays plain tensors; anything else (numbers,
    strings, lists) is passed as it is."""
    ours, theirs, leaves = [], [], []
    for i, v in enumerate(values):
        if isinstance(v, np.ndarray):
            grad = v.dtype.kind == "f" and i not in constants
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


def assert_matches_torch(fn, values, device, rtol: float = 1e-7, atol: float = 1e-10, backward: bool = True,
                         constants=(), gradcheck: bool = False):
    """Runs ``fn(module, *inputs)`` with ``module`` distgrad and then torch (one lambda serves both, as
    the names agree) and checks that every output and, after a backward of the float outputs against
    the same random weights, every gradient agree. Float arrays at the positions in ``constants``
    (float targets) take no gradient. With ``gradcheck``, distgrad's ``fn`` is also gradchecked in its
    float inputs. Returns distgrad's outputs."""
    torch = __import__("pytest").importorskip("torch")
    ours, theirs, leaves = _pair_inputs(torch, values, device, constants)
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
    if gradcheck:
        positions = [i for i, v in enumerate(ours) if isinstance(v, dg.Tensor) and v.requires_grad]

        def of_leaves(*leaves):
            inputs = list(ours)
            for i, leaf in zip(positions, leaves):
                inputs[i] = leaf
            return fn(dg, *inputs)
        assert dg.gradcheck(of_leaves, [dg.tensor(host(ours[i]), device=device, requires_grad=True)
                                        for i in positions])
    return out_ours


def assert_raises_like_torch(call, message: str, error=RuntimeError) -> None:
    """``call(module)`` raises ``error`` matching ``message`` with ``module`` distgrad and with torch."""
    pytest = __import__("pytest")
    torch = pytest.importorskip("torch")
    for module in (dg, torch):
        with pytest.raises(error, match=message):
            call(module)


def compare_with_torch(ours, theirs, *shapes, device="cpu", dtype=np.float32, rtol=1e-4, atol=1e-5):
    """Copies ``ours``'s state into the torch layer, runs both on the same random inputs, compares
    outputs, input gradients, parameter gradients and (updated) buffers."""
    import pytest
    torch = pytest.importorskip("torch")
    theirs.load_state_dict({k: torch.from_numpy(np.array(host(v))) for k, v in ours.state_dict().items()})
    ours.to(device)
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    xs = [dg.tensor(a, device=device, requires_grad=True) for a in arrays]
    txs = [torch.from_numpy(a.copy()).requires_grad_() for a in arrays]
    out, expected = ours(*xs), theirs(*txs)
    np.testing.assert_allclose(host(out), expected.detach().numpy(), rtol=rtol, atol=atol)
    upstream = rng.standard_normal(expected.shape).astype(dtype)
    out.backward(dg.tensor(upstream, device=device))
    expected.backward(torch.from_numpy(upstream))
    for x, tx in zip(xs, txs):
        np.testing.assert_allclose(host(x.grad), tx.grad.numpy(), rtol=rtol, atol=atol)
    torch_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(host(p.grad), torch_params[name].grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg=name)
    torch_buffers = dict(theirs.named_buffers())
    for name, b in ours.named_buffers():
        np.testing.assert_allclose(host(b), torch_buffers[name].numpy(), rtol=rtol, atol=atol, err_msg=name)
    return out
