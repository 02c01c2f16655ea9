"""A custom autograd Function: the Legendre polynomial P3, used in the cubic fit of sin(x)."""
import math

import distgrad as dg
from polynomial_autograd import fit  # the same gradient-descent loop; only the model differs


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
    loss = fit(lambda x: a + b * LegendrePolynomial3.apply(c + d * x), (a, b, c, d), x, y, iterations, learning_rate)
    print(f"Result: y = {a.item()} + {b.item()} * P3({c.item()} + {d.item()} x)")
    return loss


if __name__ == "__main__":
    main()
