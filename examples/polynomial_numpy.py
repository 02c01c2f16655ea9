"""Fit y = sin(x) with a third-order polynomial using raw NumPy arrays and hand-written gradients."""
import math

import numpy as np


def main(iterations: int = 2000, learning_rate: float = 1e-6) -> float:
    x = np.linspace(-math.pi, math.pi, 2000)
    y = np.sin(x)
    rng = np.random.default_rng(0)
    a, b, c, d = rng.standard_normal(4)
    for t in range(iterations):
        y_pred = a + b * x + c * x ** 2 + d * x ** 3
        loss = np.square(y_pred - y).sum()
        if t % 500 == 499:
            print(t, loss)
        grad_y_pred = 2.0 * (y_pred - y)
        a -= learning_rate * grad_y_pred.sum()
        b -= learning_rate * (grad_y_pred * x).sum()
        c -= learning_rate * (grad_y_pred * x ** 2).sum()
        d -= learning_rate * (grad_y_pred * x ** 3).sum()
    print(f"Result: y = {a} + {b} x + {c} x^2 + {d} x^3")
    return float(loss)


if __name__ == "__main__":
    main()
