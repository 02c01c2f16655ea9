"""Workload W4: the same fit with distgrad tensors; autograd computes the gradients."""
import math

import distgrad as dg


def fit(predict, params, x, y, iterations: int, learning_rate: float) -> float:
    """Plain gradient descent on the summed squared error of ``predict(x)``: the gradients come from
    autograd, the updates of ``params`` are written by hand under ``no_grad``. Returns the last loss."""
    for t in range(iterations):
        loss = (predict(x) - y).pow(2).sum()
        if t % 500 == 499:
            print(t, loss.item())
        loss.backward()
        with dg.no_grad():
            for p in params:
                p -= learning_rate * p.grad
                p.grad = None
    return loss.item()


def main(iterations: int = 2000, learning_rate: float = 1e-6, device: str = "cpu") -> float:
    dtype = dg.float64
    x = dg.linspace(-math.pi, math.pi, 2000, dtype=dtype, device=device)
    y = x.sin()
    dg.manual_seed(0)
    a, b, c, d = (dg.randn((), dtype=dtype, device=device, requires_grad=True) for _ in range(4))
    loss = fit(lambda x: a + b * x + c * x ** 2 + d * x ** 3, (a, b, c, d), x, y, iterations, learning_rate)
    print(f"Result: y = {a.item()} + {b.item()} x + {c.item()} x^2 + {d.item()} x^3")
    return loss


if __name__ == "__main__":
    main()
