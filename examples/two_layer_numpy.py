"""The classic two-layer network (ReLU, squared error) trained with hand-written NumPy backprop."""
import numpy as np


def main(steps: int = 500, learning_rate: float = 1e-6) -> float:
    batch, d_in, hidden, d_out = 64, 1000, 100, 10
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((batch, d_in)), rng.standard_normal((batch, d_out))
    w1, w2 = rng.standard_normal((d_in, hidden)), rng.standard_normal((hidden, d_out))
    for t in range(steps):
        h = x @ w1
        h_relu = np.maximum(h, 0)
        y_pred = h_relu @ w2
        loss = np.square(y_pred - y).sum()
        if t % 100 == 99:
            print(t, loss)
        grad_y_pred = 2.0 * (y_pred - y)
        grad_w2 = h_relu.T @ grad_y_pred
        grad_h = grad_y_pred @ w2.T
        grad_h[h < 0] = 0
        grad_w1 = x.T @ grad_h
        w1 -= learning_rate * grad_w1
        w2 -= learning_rate * grad_w2
    return float(loss)


if __name__ == "__main__":
    main()
