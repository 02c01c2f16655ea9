"""The same fit with nn.Sequential, a loss module and an optimizer."""
import math

import distgrad as dg
from distgrad import nn


def main(iterations: int = 2000, device: str = "cpu") -> float:
    dg.manual_seed(0)
    x = dg.linspace(-math.pi, math.pi, 2000, device=device)
    y = x.sin()
    features = dg.stack([x, x ** 2, x ** 3], dim=1)  # (2000, 3)
    model = nn.Sequential(nn.Linear(3, 1), nn.Flatten(0, 1)).to(device)
    loss_fn = nn.MSELoss(reduction="sum")
    optimizer = dg.optim.RMSprop(model.parameters(), lr=1e-3)
    for t in range(iterations):
        loss = loss_fn(model(features), y)
        if t % 500 == 499:
            print(t, loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    linear = model[0]
    b, c, d = linear.weight.detach().reshape(-1).tolist()
    print(f"Result: y = {linear.bias.item()} + {b} x + {c} x^2 + {d} x^3")
    return loss.item()


if __name__ == "__main__":
    main()
