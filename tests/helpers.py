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


def check_against_torch(ours, theirs, arrays, device="cpu", rtol=1e-10, atol=1e-12, gradcheck=True, seed=0,
                        constants=()):
    """Runs ``ours`` on distgrad tensors of ``arrays`` (on ``device``) and ``theirs`` on torch tensors of the same
    values, and compares the outputs and the gradients of every floating input for a random upstream gradient.

    Floating arrays become float64 leaves that require grad, but those whose positions are in ``constants``
    (float targets); other arrays (targets, indices) are passed as they are. With ``gradcheck``, ``ours`` is
    also gradchecked (finite differences, float64). Returns our output.
    """
    import pytest
    torch = pytest.importorskip("torch")
    arrays = [np.asarray(a) for a in arrays]
    floating = [a.dtype.kind == "f" and i not in constants for i, a in enumerate(arrays)]
    xs = [dg.tensor(a, dtype=dg.float64 if a.dtype.kind == "f" else None, device=device, requires_grad=f)
          for a, f in zip(arrays, floating)]
    txs = [torch.tensor(a, dtype=torch.float64 if a.dtype.kind == "f" else None, requires_grad=f)
           for a, f in zip(arrays, floating)]
    out, expected = ours(*xs), theirs(*txs)
    outs = out if isinstance(out, tuple) else (out,)
    expecteds = expected if isinstance(expected, tuple) else (expected,)
    assert len(outs) == len(expecteds)
    for o, e in zip(outs, expecteds):
        assert tuple(o.shape) == tuple(e.shape), (o.shape, e.shape)
        np.testing.assert_allclose(host(o), e.detach().numpy(), rtol=rtol, atol=atol)
    rng = np.random.default_rng(seed)
    pairs = [(o, e) for o, e in zip(outs, expecteds) if e.requires_grad]
    if pairs:
        ups = [rng.standard_normal(tuple(e.shape)) for _, e in pairs]
        total = sum((o * dg.tensor(u, dtype=o.dtype, device=device)).sum() for (o, _), u in zip(pairs, ups))
        torch_total = sum((e * torch.tensor(u)).sum() for (_, e), u in zip(pairs, ups))
        total.backward()
        torch_total.backward()
        for x, tx, f in zip(xs, txs, floating):
            if f and tx.grad is not None:
                np.testing.assert_allclose(host(x.grad), tx.grad.numpy(), rtol=rtol, atol=atol)
            elif f:
                assert x.grad is None or not host(x.grad).any()
    if gradcheck and pairs:
        def only_floats(*floats):
            it = iter(floats)
            return ours(*[next(it) if f else x for x, f in zip(xs, floating)])
        leaves = [dg.tensor(a, dtype=dg.float64, device=device, requires_grad=True) for a, f in zip(arrays, floating) if f]
        assert dg.gradcheck(only_floats, leaves)
    return out


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
