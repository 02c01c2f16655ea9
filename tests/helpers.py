"""Helpers shared by the test files (import them with ``from helpers import ...``)."""
import gzip
import importlib.util
import os
import pathlib
import struct
import sys

import numpy as np
import pytest

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


def training_step(model, optimizer):
    """``step(x, y)``: one cross-entropy step of ``model`` with ``optimizer`` (the workloads' ``train_step``);
    returns the loss."""
    from distgrad.bench import frameworks
    from distgrad.bench.workloads import train_step
    fw = frameworks.load("distgrad")
    return lambda x, y: train_step(fw, model, optimizer, x, y)


def expect_case_ok(reports: dict, case: str) -> None:
    """Fails with the first rank's failure of ``case``; skips when the case skipped itself."""
    for rank, report in reports.items():
        result = report["results"][case]
        if result.startswith("skipped:"):
            pytest.skip(result)
        assert result == "ok", f"rank {rank} of {len(reports)}:\n{result}"


# --- side by side with PyTorch (tests that use these importorskip torch first) ------------------------
def copy_torch_into(ours, theirs, device="cpu") -> None:
    """Loads the PyTorch module ``theirs``' state dict into ``ours``: the keys must match one to one."""
    ours.load_state_dict({k: dg.tensor(v.detach().numpy(), device=device) for k, v in theirs.state_dict().items()})


def compare_gradients(ours, theirs, rtol: float = 1e-9, atol: float = 1e-11) -> None:
    """Every parameter's gradient equals that of the PyTorch parameter of the same name."""
    theirs_named = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        q = theirs_named[name]
        if q.grad is None:
            assert p.grad is None or not host(p.grad).any(), name
        else:
            np.testing.assert_allclose(host(p.grad), q.grad.numpy(), rtol=rtol, atol=atol, err_msg=name)


def _converted(arrays, convert) -> list:
    """Each array as a tensor; an array listed twice gives the same tensor twice (``key is value``)."""
    memo = {}
    for a in arrays:
        if a is not None and id(a) not in memo:
            memo[id(a)] = convert(a)
    return [None if a is None else memo[id(a)] for a in arrays]


def run_both(ours, theirs, arrays, call, device, grad_dtype=np.float64):
    """``call(module, tensors)`` in both libraries on the same arrays (those of ``grad_dtype`` require
    grad), then backward of a random projection of the (first) output. Returns both outputs and both
    input lists."""
    import torch
    mine = _converted(arrays, lambda a: dg.tensor(a, device=device, requires_grad=a.dtype == grad_dtype))
    yours = _converted(arrays, lambda a: torch.tensor(a, requires_grad=a.dtype == grad_dtype))
    out, expected = call(ours, mine), call(theirs, yours)
    first, expected_first = (out, expected) if isinstance(expected, torch.Tensor) else (out[0], expected[0])
    weights = np.random.default_rng(5).standard_normal(tuple(expected_first.shape))
    (first * dg.tensor(weights, device=device)).sum().backward()
    (expected_first * torch.tensor(weights)).sum().backward()
    return out, expected, mine, yours


def assert_close(ours, theirs, rtol: float = 1e-9, atol: float = 1e-11) -> None:
    """A distgrad tensor equals a PyTorch tensor (or both are None)."""
    if theirs is None:
        assert ours is None
        return
    np.testing.assert_allclose(host(ours.detach()), theirs.detach().numpy(), rtol=rtol, atol=atol)


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
    torch = pytest.importorskip("torch")
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
    torch = pytest.importorskip("torch")
    for module in (dg, torch):
        with pytest.raises(error, match=message):
            call(module)


def compare_with_torch(ours, theirs, *shapes, device="cpu", dtype=np.float32, rtol=1e-4, atol=1e-5):
    """Gives the torch layer ``theirs`` the state of ``ours``, runs both on the same random inputs of
    ``shapes`` (``run_both``), and compares outputs, input gradients, parameter gradients and the
    (updated) buffers. Returns distgrad's output."""
    torch = pytest.importorskip("torch")
    theirs.load_state_dict({k: torch.from_numpy(np.array(host(v))) for k, v in ours.state_dict().items()})
    ours.to(device)
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    out, expected, mine, yours = run_both(ours, theirs, arrays, lambda m, xs: m(*xs), device, grad_dtype=dtype)
    assert_close(out, expected, rtol, atol)
    for x, tx in zip(mine, yours):
        assert_close(x.grad, tx.grad, rtol, atol)
    compare_gradients(ours, theirs, rtol, atol)
    torch_buffers = dict(theirs.named_buffers())
    for name, b in ours.named_buffers():
        np.testing.assert_allclose(host(b), torch_buffers[name].numpy(), rtol=rtol, atol=atol, err_msg=name)
    return out


def load_example(name: str):
    """``examples/<name>.py`` as a module (the examples are scripts, not a package), so that a test
    checks the very code a reader of the example runs."""
    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # as for a script run: an example may import its siblings
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


def to_torch(t):
    """The tensor's values as a CPU torch tensor of the same dtype (bfloat16 included), for oracle tests."""
    import torch

    values = host(t)
    if values.dtype == dg.bfloat16:  # NumPy cannot hand bfloat16 to torch: pass the bits
        return torch.from_numpy(values.view(np.uint16).copy()).view(torch.bfloat16)
    return torch.from_numpy(np.array(values, copy=True))


def from_torch(t) -> np.ndarray:
    """A torch tensor's values as a NumPy array of the same dtype (bfloat16 through ml_dtypes)."""
    import torch

    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(dg.bfloat16)
    return t.numpy()


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` (uint8) in IDX format: magic 0x0000_08_<ndim>, the sizes, the values."""
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_split(folder, split="train", n=6, gz=True, seed=0):
    """Tiny MNIST-format files: n images 28x28 and their labels; returns (images, labels)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    os.makedirs(folder, exist_ok=True)
    for name, array in ((f"{split}-images-idx3-ubyte", images), (f"{split}-labels-idx1-ubyte", labels)):
        data = idx_bytes(array)
        with open(os.path.join(folder, name + ".gz" if gz else name), "wb") as f:
            f.write(gzip.compress(data, mtime=0) if gz else data)
    return images, labels


# --- ONNX (tests that use this importorskip onnx and onnxruntime first) ---------------------------------
class FunctionModule(dg.nn.Module):
    """A module whose forward is ``fn`` (functional ops under a model's API, to export them); the ``layers``
    that ``fn`` calls are registered, so that ``eval()`` reaches them."""

    def __init__(self, fn, *layers):
        super().__init__()
        self.fn = fn
        self.layers = dg.nn.ModuleList(layers)

    def forward(self, *inputs):
        return self.fn(*inputs)


def assert_onnx_matches(model, args, *, other_args=(), atol: float = 1e-5, rtol: float = 1e-4, **export_kwargs):
    """Exports ``model`` on the example ``args`` with ``dg.onnx.export`` (into memory), runs the file in
    onnxruntime on ``args`` and on each entry of ``other_args`` (inputs of other values, and of other
    sizes along the dynamic axes), and compares every output with distgrad's own in eval mode.
    Returns the ``onnx.ModelProto``."""
    import io

    import onnx
    import onnxruntime

    from distgrad.onnx.trace import flatten
    buffer = io.BytesIO()
    proto = dg.onnx.export(model, args, buffer, **export_kwargs)
    onnx.checker.check_model(proto, full_check=True)  # with strict shape and type inference
    session = onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    if hasattr(model, "eval"):
        model.eval()
    for inputs in (args, *other_args):
        inputs = inputs if isinstance(inputs, tuple) else (inputs,)
        given = []
        flatten(inputs, given)
        got = session.run(None, {i.name: host(t) for i, t in zip(session.get_inputs(), given)})
        call_args, call_kwargs = (inputs[:-1], inputs[-1]) if inputs and isinstance(inputs[-1], dict) else (inputs, {})
        with dg.no_grad():
            result = model(*call_args, **call_kwargs)
        expected = []
        flatten(result, expected)
        assert len(got) == len(expected)
        for n, (g, e) in enumerate(zip(got, expected)):
            assert g.dtype == host(e).dtype, (n, g.dtype, host(e).dtype)
            np.testing.assert_allclose(g, host(e), rtol=rtol, atol=atol, err_msg=f"output {n}")
    return proto
