"""The same two-layer network with distgrad tensors: autograd replaces the hand-written backward."""
import numpy as np

import distgrad as dg


def main(steps: int = 500, learning_rate: float = 1e-6, device: str = "cpu") -> float:
    batch, d_in, hidden, d_out = 64, 1000, 100, 10
    rng = np.random.default_rng(0)  # the same data and weights as two_layer_numpy.py
    x = dg.tensor(rng.standard_normal((batch, d_in)), device=device)
    y = dg.tensor(rng.standard_normal((batch, d_out)), device=device)
    w1 = dg.tensor(rng.standard_normal((d_in, hidden)), device=device, requires_grad=True)
    w2 = dg.tensor(rng.standard_normal((hidden, d_out)), device=device, requires_grad=True)
    for t in range(steps):
        y_pred = (x @ w1).clamp(min=0) @ w2
        loss = (y_pred - y).pow(2).sum()
        if t % 100 == 99:
            print(t, loss.item())
        loss.backward()
        with dg.no_grad():
            w1 -= learning_rate * w1.grad
            w2 -= learning_rate * w2.grad
            w1.grad = None
            w2.grad = None
    return loss.item()


if __name__ == "__main__":
    main()
