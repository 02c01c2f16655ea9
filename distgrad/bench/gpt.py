"""Workload W7: a character-level GPT, written once against PyTorch's API and built in distgrad or PyTorch.

``gpt_model(lib, config)`` takes the library itself (``distgrad`` or ``torch``): the same source builds
both twins, which is the side-by-side check that distgrad runs PyTorch model code as written. The
model is nanoGPT's (Karpathy): pre-norm blocks ``x + attn(ln1(x))``, ``x + mlp(ln2(x))``; causal
self-attention through ``F.scaled_dot_product_attention``; a GELU MLP 4x wide; learned position
embeddings; a final LayerNorm and an untied head without bias; no biases (``bias=False``, as nanoGPT's
shakespeare-char run). Training recipe: AdamW (betas 0.9/0.99, weight decay 0.1 on matrices only),
linear warm-up then cosine decay of the learning rate to a tenth, gradients clipped to norm 1.

Data: ``CharData`` encodes a text file as characters; the last 10% is validation. Batches are random
windows whose starts are a pure function of (seed, step), drawn for the global batch and sliced per
rank, so N ranks see exactly what one process with N times the batch sees, and a resumed run
continues exactly. ``examples/gpt.py`` trains it; ``gpt_runs`` times it (W7) and runs the twin.
"""
from __future__ import annotations

import contextlib
import functools
import math
import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from distgrad.bench.precision import AMP_DTYPES, MixedPrecision, mixed_precision

__all__ = ["GPTConfig", "Recipe", "PRESETS", "preset", "CharData", "gpt_model", "make_optimizer", "learning_rate",
           "AMP_DTYPES", "MixedPrecision", "mixed_precision", "train_step", "training_steps", "evaluate", "generate",
           "progress_record", "progress_line"]


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Recipe:
    """How a preset trains: per-rank batch, AdamW and its schedule, evaluation."""

    batch_size: int = 32
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    betas: tuple = (0.9, 0.99)
    grad_clip: float = 1.0
    eval_interval: int = 100
    eval_iters: int = 20


PRESETS = {
    # The shape of nanoGPT's config/train_shakespeare_char.py (a GPU run).
    "full": (GPTConfig(0, block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2),
             Recipe(batch_size=64, eval_interval=250, eval_iters=200)),
    # nanoGPT's CPU variant of it, batch 32: trains on a 2-core machine.
    "tiny": (GPTConfig(0, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0), Recipe(batch_size=32)),
}


def preset(name: str, vocab_size: int) -> tuple[GPTConfig, Recipe]:
    config, recipe = PRESETS[name]
    return replace(config, vocab_size=vocab_size), recipe


# --- the model, for either library ---------------------------------------------------------------
@functools.cache
def _gpt_class(lib):
    nn, F = lib.nn, lib.nn.functional

    class CausalSelfAttention(nn.Module):
        def __init__(self, c: GPTConfig):
            super().__init__()
            self.c_attn = nn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
            self.c_proj = nn.Linear(c.n_embd, c.n_embd, bias=c.bias)
            self.resid_dropout = nn.Dropout(c.dropout)
            self.n_head, self.dropout = c.n_head, c.dropout

        def forward(self, x):
            b, t, e = x.shape
            q, k, v = self.c_attn(x).split(e, dim=2)
            q, k, v = (z.view(b, t, self.n_head, e // self.n_head).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                               is_causal=True)
            return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(b, t, e)))

    class MLP(nn.Module):
        def __init__(self, c: GPTConfig):
            super().__init__()
            self.c_fc = nn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias)
            self.gelu = nn.GELU()
            self.c_proj = nn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias)
            self.dropout = nn.Dropout(c.dropout)

        def forward(self, x):
            return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))

    class Block(nn.Module):
        def __init__(self, c: GPTConfig):
            super().__init__()
            self.ln_1 = nn.LayerNorm(c.n_embd, bias=c.bias)
            self.attn = CausalSelfAttention(c)
            self.ln_2 = nn.LayerNorm(c.n_embd, bias=c.bias)
            self.mlp = MLP(c)

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self, c: GPTConfig):
            super().__init__()
            self.config = c
            self.wte = nn.Embedding(c.vocab_size, c.n_embd)
            self.wpe = nn.Embedding(c.block_size, c.n_embd)
            self.drop = nn.Dropout(c.dropout)
            self.h = nn.ModuleList([Block(c) for _ in range(c.n_layer)])
            self.ln_f = nn.LayerNorm(c.n_embd, bias=c.bias)
            self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
            for name, p in self.named_parameters():  # nanoGPT's initialisation
                if p.ndim == 2:
                    std = 0.02 / math.sqrt(2 * c.n_layer) if name.endswith("c_proj.weight") else 0.02
                    nn.init.normal_(p, mean=0.0, std=std)
                elif name.endswith("bias"):
                    nn.init.zeros_(p)

        def forward(self, idx):
            """Token ids (B, T) -> logits (B, T, vocab_size)."""
            t = idx.shape[1]
            if t > self.config.block_size:
                raise ValueError(f"sequence of length {t} is longer than the context, {self.config.block_size}")
            pos = lib.arange(t, device=idx.device)
            x = self.drop(self.wte(idx) + self.wpe(pos))
            for block in self.h:
                x = block(x)
            return self.lm_head(self.ln_f(x))

    return GPT


def gpt_model(lib, config: GPTConfig):
    """The GPT of ``config`` built with ``lib`` (the ``distgrad`` or ``torch`` module), initialised from its RNG."""
    return _gpt_class(lib)(config)


def make_optimizer(lib, model, recipe: Recipe):
    """AdamW with weight decay on the matrices (linear and embedding weights) only, as nanoGPT."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": recipe.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    return lib.optim.AdamW(groups, lr=recipe.lr, betas=recipe.betas)


def learning_rate(step: int, recipe: Recipe, total_steps: int) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to ``min_lr`` at ``total_steps``."""
    if step < recipe.warmup_steps:
        return recipe.lr * (step + 1) / (recipe.warmup_steps + 1)
    if step >= total_steps:
        return recipe.min_lr
    progress = (step - recipe.warmup_steps) / max(1, total_steps - recipe.warmup_steps)
    return recipe.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (recipe.lr - recipe.min_lr)


def train_step(lib, model, optimizer, x, y, lr: float, grad_clip: float,
               precision: MixedPrecision | None = None) -> float:
    """One AdamW step on the batch ``x`` -> ``y`` (token ids, (B, T)); returns the loss. With ``precision``,
    forward and loss run under its autocast and its scaler scales the loss (gradients clipped unscaled)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    with precision.autocast if precision else contextlib.nullcontext():
        logits = model(x)
        loss = lib.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1))
    optimizer.zero_grad(set_to_none=True)
    if precision is None:
        loss.backward()
        if grad_clip:
            lib.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        return loss.item()
    scaler = precision.scaler
    scaler.scale(loss).backward()
    if grad_clip:
        scaler.unscale_(optimizer)
        lib.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return loss.item()


def training_steps(lib, model, optimizer, data: "CharData", config: GPTConfig, recipe: Recipe, steps: int,
                   seed: int, device, start: int = 0, end: int | None = None, rank: int = 0, world: int = 1,
                   precision: MixedPrecision | None = None):
    """Trains steps ``start`` to ``end`` (default ``steps``, where the schedule ends) on rank ``rank``'s share
    of each global batch (in ``precision``, default float32). After each step that ends an evaluation
    interval, and after the last, yields (step, learning rate, steps since the last yield, their seconds)."""
    end = steps if end is None else end
    clock, timed = time.perf_counter(), 0
    for step in range(start, end):
        # Dropout masks are a function of (seed, rank, step): a resumed run continues exactly.
        lib.manual_seed(int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0]))
        x, y = data.train_batch(step, seed, recipe.batch_size, config.block_size, rank, world)
        lr = learning_rate(step, recipe, steps)
        train_step(lib, model, optimizer, lib.tensor(x, device=device), lib.tensor(y, device=device), lr,
                   recipe.grad_clip, precision)
        timed += 1
        if step % recipe.eval_interval == 0 or step == end - 1:
            yield step, lr, timed, time.perf_counter() - clock
            clock, timed = time.perf_counter(), 0


def evaluate(lib, model, batches, precision: MixedPrecision | None = None) -> tuple[float, int]:
    """(sum of the mean losses, number) over ``batches`` of (x, y), in eval mode and without gradients
    (under ``precision``'s autocast when given)."""
    was_training = model.training
    model.eval()
    total = 0.0
    with lib.no_grad(), precision.autocast if precision else contextlib.nullcontext():
        for x, y in batches:
            logits = model(x)
            total += lib.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1)).item()
    model.train(was_training)
    return total, len(batches)


def progress_record(step: int, train_loss: float, val_loss: float, lr: float, steps_timed: int,
                    tokens_per_step: int, seconds: float) -> dict:
    """One point of a training curve (the records of ``metrics.json``)."""
    return {"step": step, "train_loss": train_loss, "val_loss": val_loss, "lr": lr,
            "tokens_per_s": steps_timed * tokens_per_step / seconds, "seconds_per_step": seconds / steps_timed}


def progress_line(record: dict, steps: int) -> str:
    return (f"step {record['step']:5d}/{steps}: train loss {record['train_loss']:.4f}  val loss "
            f"{record['val_loss']:.4f}  lr {record['lr']:.2e}  {record['tokens_per_s']:,.0f} tokens/s")


def generate(lib, model, idx, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
             seed: int = 0):
    """Extends the token ids ``idx`` (B, T, a NumPy array) by ``max_new_tokens`` sampled ones (nanoGPT's
    sampling: the last ``block_size`` tokens as context, logits / temperature, the ``top_k`` most likely,
    ``multinomial``); returns a NumPy array. Seeds the library's generator with ``seed``."""
    lib.manual_seed(seed)
    device = next(model.parameters()).device
    tokens = lib.tensor(np.asarray(idx), device=device)
    model.eval()
    with lib.no_grad():
        for _ in range(max_new_tokens):
            logits = model(tokens[:, -model.config.block_size:])[:, -1, :] / max(temperature, 1e-8)
            if top_k is not None and top_k < logits.shape[-1]:
                kth = lib.topk(logits, top_k)[0][:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = lib.nn.functional.softmax(logits, dim=-1)
            tokens = lib.cat((tokens, lib.multinomial(probs, num_samples=1)), dim=1)
    return tokens.cpu().numpy()


# --- data ---------------------------------------------------------------------------------------
class CharData:
    """A text file as token ids, one per character; the last 10% is validation.

    ``vocab`` (a string of the distinct characters, sorted) maps ids to characters and back.
    """

    def __init__(self, text: str, vocab: str | None = None):
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        self.vocab = vocab if vocab is not None else "".join(sorted(set(text)))
        table = np.frombuffer(self.vocab.encode("utf-32-le"), dtype=np.uint32)
        ids = np.searchsorted(table, codes)
        if ids.size and (ids.max() >= len(table) or not np.array_equal(table[ids], codes)):
            raise ValueError("the text holds characters missing from the vocabulary")
        self.ids = ids.astype(np.int64)
        self.split_at = int(0.9 * len(self.ids))

    @classmethod
    def from_file(cls, path: str) -> "CharData":
        with open(path, encoding="utf-8") as f:
            return cls(f.read())

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> np.ndarray:
        return CharData(text, self.vocab).ids

    def decode(self, ids) -> str:
        return "".join(self.vocab[i] for i in np.asarray(ids).ravel())

    def windows(self, split: str, starts: np.ndarray, block_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and next-token targets (len(starts), block_size) from ``split`` at ``starts``."""
        data = self.ids[:self.split_at] if split == "train" else self.ids[self.split_at:]
        index = starts[:, None] + np.arange(block_size)
        return data[index], data[index + 1]

    def starts(self, split: str, count: int, block_size: int, seed) -> np.ndarray:
        """``count`` window starts drawn uniformly from ``split``; the same ``seed`` gives the same starts."""
        n = self.split_at if split == "train" else len(self.ids) - self.split_at
        if n <= block_size + 1:
            raise ValueError(f"the {split} split has {n} tokens, too few for windows of {block_size}")
        return np.random.default_rng(seed).integers(0, n - block_size - 1, count)

    def train_batch(self, step: int, seed: int, batch_size: int, block_size: int, rank: int = 0, world: int = 1):
        """Rank ``rank``'s share of the global training batch of ``step`` (global size ``world * batch_size``)."""
        starts = self.starts("train", world * batch_size, block_size, (seed, step))
        return self.windows("train", starts[rank * batch_size:(rank + 1) * batch_size], block_size)

    def eval_batches(self, split: str, iters: int, batch_size: int, block_size: int, seed: int) -> list:
        """The fixed evaluation batches of ``split``: the same at every evaluation, on any number of ranks."""
        starts = self.starts(split, iters * batch_size, block_size, (seed, 1 + (split == "val")))
        return [self.windows(split, s, block_size) for s in starts.reshape(iters, batch_size)]
