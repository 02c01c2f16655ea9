"""A character-level LSTM language model, trained by truncated backpropagation through time.

    python examples/char_lstm.py --steps 1000                     # ../shared/data/shakespeare/shakespeare.txt
    python examples/char_lstm.py --data any.txt --sample 400      # any text file; then generate 400 characters

The text is cut into ``--batch-size`` streams read side by side. Each step trains on the next ``--bptt``
characters of every stream, starting from the LSTM state the previous step ended in, detached: the
state carries information across steps, the gradient flows back ``--bptt`` characters only (as in
pytorch/examples' word_language_model). The last 10% of the text is held out for validation.
"""
from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np

import distgrad as dg
import distgrad.nn.functional as F
from distgrad import nn

DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "shakespeare",
                            "shakespeare.txt")  # ../shared beside the repository


class CharLSTM(nn.Module):
    def __init__(self, vocab: int, embed: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, layers, dropout=dropout)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x, state=None):
        """``x`` (T, B) character ids -> logits (T, B, vocab) and the LSTM's final (h, c)."""
        out, state = self.lstm(self.drop(self.embed(x)), state)
        return self.head(self.drop(out)), state


def detach(state):
    return tuple(s.detach() for s in state)


def streams(ids: np.ndarray, batch: int, device) -> dg.Tensor:
    """The ids cut into ``batch`` equal streams, as a (length, batch) tensor (the rest is dropped)."""
    length = len(ids) // batch
    return dg.tensor(ids[:length * batch].reshape(batch, length).T.copy(), device=device)


def evaluate(model, data, bptt: int, batches: int) -> float:
    """The mean cross-entropy (nats per character) over the first ``batches`` windows of ``data``."""
    model.eval()
    total, state = 0.0, None
    with dg.no_grad():
        for i in range(batches):
            x, y = data[i * bptt:(i + 1) * bptt], data[i * bptt + 1:(i + 1) * bptt + 1]
            logits, state = model(x, state)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)).item()
    model.train()
    return total / batches


def sample(model, chars: list, prompt: str, length: int, temperature: float, device) -> str:
    """``length`` characters drawn one at a time after ``prompt``, the state carried along."""
    index = {c: i for i, c in enumerate(chars)}
    rng = np.random.default_rng(0)
    model.eval()
    out, state = list(prompt), None
    x = dg.tensor([[index[c]] for c in prompt], device=device)
    with dg.no_grad():
        for _ in range(length):
            logits, state = model(x, state)
            probs = F.softmax(logits[-1, 0] / temperature, dim=-1).cpu().numpy().astype(np.float64)
            nxt = int(rng.choice(len(chars), p=probs / probs.sum()))
            out.append(chars[nxt])
            x = dg.tensor([[nxt]], device=device)
    return "".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=DEFAULT_DATA, help="a text file (default: the shared Shakespeare)")
    p.add_argument("--device", default="cuda" if dg.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--bptt", type=int, default=64)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--sample", type=int, default=200, help="characters to generate after training")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    dg.manual_seed(args.seed)
    with open(args.data, encoding="utf-8", errors="replace") as f:
        text = f.read()
    chars = sorted(set(text))
    ids = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    ids = np.searchsorted(np.array([ord(c) for c in chars]), ids).astype(np.int64)
    split = int(0.9 * len(ids))
    train, val = streams(ids[:split], args.batch_size, args.device), streams(ids[split:], args.batch_size, args.device)
    val_batches = max(1, min(20, (len(val) - 1) // args.bptt))

    model = CharLSTM(len(chars), 64, args.hidden, args.layers, args.dropout).to(args.device)
    optimizer = dg.optim.Adam(model.parameters(), lr=args.lr)
    print(f"{len(text):,} characters, {len(chars)} distinct; {sum(p.numel() for p in model.parameters()):,} parameters")
    state, position, start, seen = None, 0, time.perf_counter(), 0
    for step in range(1, args.steps + 1):
        if position + args.bptt + 1 > len(train):  # the end of the streams: start over
            state, position = None, 0
        x, y = train[position:position + args.bptt], train[position + 1:position + args.bptt + 1]
        position += args.bptt
        logits, state = model(x, state)
        state = detach(state)
        loss = F.cross_entropy(logits.reshape(-1, len(chars)), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        seen += x.numel()
        if step % args.eval_every == 0 or step == args.steps:
            val_loss = evaluate(model, val, args.bptt, val_batches)
            rate = seen / (time.perf_counter() - start)
            print(f"step {step:5d}  train {loss.item():.3f}  val {val_loss:.3f} ({val_loss / math.log(2):.2f} bits/char)"
                  f"  {rate:,.0f} chars/s", flush=True)
    if args.sample:
        print("---\n" + sample(model, chars, "\n", args.sample, 0.8, args.device))


if __name__ == "__main__":
    main()
