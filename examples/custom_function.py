"""A custom autograd Function: the Legendre polynomial P3, used in the cubic fit of sin(x)."""
import math

import distgrad as dg


class LegendrePolynomial3(dg.autograd.Function):
    """P3(x) = (5x^3 - 3x) / 2, with its derivative 1.5 (5x^2 - 1) written by hand."""

    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        return 0.5 * (5 * input ** 3 - 3 * input)

    @staticmethod
    def backward(ctx, grad_output):
        (input,) = ctx.saved_tensors
        return grad_output * 1.5 * (5 * input ** 2 - 1)


def main(iterations: int = 2000, learning_rate: float = 5e-6) -> float:
    dtype = dg.float64
    x = dg.linspace(-math.pi, math.pi, 2000, dtype=dtype)
    y = x.sin()
    a = dg.full((), 0.0, dtype=dtype, requires_grad=True)
    b = dg.full((), -1.0, dtype=dtype, requires_grad=True)
    c = dg.full((), 0.0, dtype=dtype, requires_grad=True)
    d = dg.full((), 0.3, dtype=dtype, requires_grad=True)
    for t in range(iterations):
        y_pred = a + b * LegendrePolynomial3.apply(c + d * x)
        loss = (y_pred - y).pow(2).sum()
        if t % 500 == 499:
            print(t, loss.item())
        loss.backward()
        with dg.no_grad():
            for p in (a, b, c, d):
                p -= learning_rate * p.grad
                p.grad = None
    print(f"Result: y = {a.item()} + {b.item()} * P3({c.item()} + {d.item()} x)")
    return loss.item()


if __name__ == "__main__":
    main()
