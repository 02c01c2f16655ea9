"""``gradcheck``/``gradgradcheck``: compare autograd's Jacobians with central finite differences."""
from __future__ import annotations

import numpy as np

from distgrad.autograd.grad import grad as autograd_grad
from distgrad.dtypes import FLOATING
from distgrad.tensor import Tensor


class GradcheckError(RuntimeError):
    """Raised when an analytical Jacobian disagrees with the numerical one."""


def _tensors(x) -> tuple:
    return (x,) if isinstance(x, Tensor) else tuple(x)


def _numerical_jacobians(func, inputs, index, eps):
    """Per output: a (numel(input), numel(output)) matrix of central differences."""
    x = inputs[index]
    xp = x._xp
    cols = []
    flat_indices = np.ndindex(*x.shape) if x.ndim else [()]
    for idx in flat_indices:  # grad mode stays on: gradgradcheck's func calls autograd itself
        orig = x.array[idx].item()
        x.array[idx] = orig + eps
        plus = [o.array.astype(np.float64).ravel().copy() for o in _tensors(func(*inputs))]
        x.array[idx] = orig - eps
        minus = [o.array.astype(np.float64).ravel().copy() for o in _tensors(func(*inputs))]
        x.array[idx] = orig
        cols.append([(p - m) / (2 * eps) for p, m in zip(plus, minus)])
    n_out = len(cols[0]) if cols else len(_tensors(func(*inputs)))
    return [xp.stack([c[k] for c in cols]) if cols else None for k in range(n_out)]


def _analytical_jacobians(outputs, inputs, index):
    x = inputs[index]
    xp = x._xp
    jacs = []
    for out in outputs:
        rows = xp.zeros((x.numel(), out.numel()), dtype=np.float64)
        if out.requires_grad:
            for j in range(out.numel()):
                onehot = xp.zeros(out.numel(), dtype=out.dtype)
                onehot[j] = 1
                (g,) = autograd_grad(out, x, Tensor(onehot.reshape(out.shape)), retain_graph=True, allow_unused=True)
                if g is not None:
                    if g.shape != x.shape:
                        raise GradcheckError(f"gradient for input {index} has shape {list(g.shape)}, "
                                             f"expected {list(x.shape)}")
                    rows[:, j] = g.array.astype(np.float64).ravel()
        jacs.append(rows)
    return jacs


def gradcheck(func, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True) -> bool:
    """True when ``func``'s gradients w.r.t. every input that requires grad match finite differences.

    Inputs should be float64; on a mismatch the error names the input, the output and the entries.
    """
    inputs = _tensors(inputs)
    checked = [i for i, t in enumerate(inputs) if getattr(t, "requires_grad", False)]
    if not checked:
        raise ValueError("gradcheck expects at least one input tensor with requires_grad=True")
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise ValueError(f"gradcheck input {i} is {inputs[i].dtype.name}; use float64 inputs "
                             "(finite differences are too coarse in lower precision)")
    outputs = [o for o in _tensors(func(*inputs)) if o.dtype in FLOATING]
    for i in checked:
        numerical = _numerical_jacobians(func, inputs, i, eps)
        analytical = _analytical_jacobians(outputs, inputs, i)
        for k, (a, n) in enumerate(zip(analytical, numerical)):
            if n is None:
                continue
            xp = inputs[i]._xp
            if not bool(xp.allclose(a, n, rtol=rtol, atol=atol)):
                diff = xp.abs(a - n)
                worst = np.unravel_index(int(diff.argmax()), diff.shape)
                message = (f"Jacobian mismatch for output {k} with respect to input {i}: largest difference "
                           f"{float(diff.max()):.3g} at (input element {worst[0]}, output element {worst[1]});\n"
                           f"numerical:\n{n}\nanalytical:\n{a}")
                if raise_exception:
                    raise GradcheckError(message)
                return False
    return True


def gradgradcheck(func, inputs, grad_outputs=None, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
                  raise_exception: bool = True) -> bool:
    """``gradcheck`` of the first derivatives themselves (backward written with differentiable ops)."""
    inputs = _tensors(inputs)
    outputs = _tensors(func(*inputs))
    if grad_outputs is None:
        rng = np.random.default_rng(0)
        grad_outputs = tuple(Tensor(o._xp.asarray(rng.standard_normal(o.shape))).requires_grad_() for o in outputs)
    grad_outputs = _tensors(grad_outputs)
    n_in = len(inputs)
    diff_idx = [i for i, t in enumerate(inputs) if getattr(t, "requires_grad", False)]

    def first_derivatives(*args):
        xs, gos = args[:n_in], args[n_in:]
        outs = _tensors(func(*xs))
        grads = autograd_grad(outs, [xs[i] for i in diff_idx], gos, create_graph=True, allow_unused=True)
        return tuple(g for g in grads if g is not None)

    return gradcheck(first_derivatives, inputs + grad_outputs, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception)
