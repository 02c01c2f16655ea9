"""The Transformer of "Attention Is All You Need", as PyTorch's ``nn.Transformer*`` layers.

Encoder layer:  x = x + SelfAttention(x) then x = x + FeedForward(x), each followed by a LayerNorm
(post-norm, the default) or applied to a LayerNorm of x (``norm_first=True``, pre-norm). The decoder
layer adds, between the two, attention over the encoder's output (``memory``). Feed-forward:
``linear2(dropout(activation(linear1(x))))``. Stacks (``TransformerEncoder``/``Decoder``) hold deep
copies of one layer plus an optional final norm. Submodule and parameter names are PyTorch's, so a
PyTorch state dict loads as it is. PyTorch's nested-tensor inference fast path does not exist here:
masked positions are computed and masked rather than skipped, which gives the same results.
"""
from __future__ import annotations

import copy

import numpy as np

from distgrad import backend, creation, dtypes
from distgrad.nn import functional as F
from distgrad.nn import init
from distgrad.nn.containers import ModuleList
from distgrad.nn.module import Module
from distgrad.nn.modules.attention import MultiheadAttention
from distgrad.nn.modules.dropout import Dropout
from distgrad.nn.modules.linear import Linear
from distgrad.nn.modules.normalization import LayerNorm


def _activation(activation):
    """``"relu"``/``"gelu"`` as functions; any callable (a function or a Module) as it is."""
    if isinstance(activation, str) and activation in ("relu", "gelu"):
        return F.relu if activation == "relu" else F.gelu
    if callable(activation):
        return activation
    raise RuntimeError(f"activation should be relu/gelu, not {activation}")


def generate_square_subsequent_mask(sz: int, device=None, dtype=None):
    """A float (sz, sz) mask: 0 on and below the diagonal, -inf above it (position i sees 0..i)."""
    mask = np.triu(np.full((sz, sz), -np.inf), k=1)
    return creation.tensor(mask, dtype=dtype or dtypes.get_default_dtype(), device=device)


def _detect_is_causal_mask(mask, is_causal: bool | None, size: int) -> bool:
    """``is_causal`` when given; else whether ``mask`` is exactly the float causal mask of ``size``."""
    if is_causal is not None or mask is None:
        return bool(is_causal)
    if mask.shape != (size, size) or mask.dtype.kind != "f":
        return False
    return bool((backend.to_device(mask.array, backend.CPU) == np.triu(np.full((size, size), -np.inf), k=1)).all())


class _TransformerLayer(Module):
    """What both layers share: PyTorch's constructor and submodules. ``attentions`` names the attention blocks
    (``self_attn``, and in the decoder ``multihead_attn``); the feed-forward block follows; each of these
    residual blocks has its LayerNorm and output Dropout (``norm1``/``dropout1``, ...)."""

    attentions: tuple[str, ...] = ("self_attn",)

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation=F.relu, layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device=None, dtype=None):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        for name in self.attentions:
            setattr(self, name, MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                                   **factory))
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **factory)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **factory)
        self.activation = _activation(activation)
        self.norm_first = norm_first
        blocks = range(1, len(self.attentions) + 2)
        for b in blocks:
            setattr(self, f"norm{b}", LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory))
        for b in blocks:
            setattr(self, f"dropout{b}", Dropout(dropout))

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x, out_dropout):
        return out_dropout(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TransformerEncoderLayer(_TransformerLayer):
    """Self-attention and feed-forward, each with a residual connection and a LayerNorm."""

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal: bool = False):
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._ff_block(self.norm2(x), self.dropout2)
        x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._ff_block(x, self.dropout2))


class TransformerDecoderLayer(_TransformerLayer):
    """Self-attention, attention over ``memory``, feed-forward; each with a residual and a LayerNorm."""

    attentions = ("self_attn", "multihead_attn")

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal: bool = False, memory_is_causal: bool = False):
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            return x + self._ff_block(self.norm3(x), self.dropout3)
        x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
        x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
        return self.norm3(x + self._ff_block(x, self.dropout3))

    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal):
        x = self.multihead_attn(x, mem, mem, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                is_causal=is_causal, need_weights=False)[0]
        return self.dropout2(x)


def _clones(layer: Module, n: int) -> ModuleList:
    return ModuleList([copy.deepcopy(layer) for _ in range(n)])


def _sequence_length(x, batch_first: bool) -> int:
    return x.shape[0] if x.ndim == 2 else x.shape[1 if batch_first else 0]


class TransformerEncoder(Module):
    """``num_layers`` copies of ``encoder_layer`` applied in turn, then ``norm`` when given."""

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int, norm: Module | None = None,
                 enable_nested_tensor: bool = True, mask_check: bool = True):
        super().__init__()
        self.layers = _clones(encoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm
        self.enable_nested_tensor = enable_nested_tensor  # accepted for PyTorch's signature; no fast path here
        self.mask_check = mask_check

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal: bool | None = None):
        batch_first = self.layers[0].self_attn.batch_first if len(self.layers) else False
        is_causal = _detect_is_causal_mask(mask, is_causal, _sequence_length(src, batch_first))
        output = src
        for layer in self.layers:
            output = layer(output, src_mask=mask, is_causal=is_causal, src_key_padding_mask=src_key_padding_mask)
        return self.norm(output) if self.norm is not None else output


class TransformerDecoder(Module):
    """``num_layers`` copies of ``decoder_layer`` applied in turn over the same ``memory``, then ``norm``."""

    def __init__(self, decoder_layer: TransformerDecoderLayer, num_layers: int, norm: Module | None = None):
        super().__init__()
        self.layers = _clones(decoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal: bool | None = None, memory_is_causal: bool = False):
        batch_first = self.layers[0].self_attn.batch_first if len(self.layers) else False
        tgt_is_causal = _detect_is_causal_mask(tgt_mask, tgt_is_causal, _sequence_length(tgt, batch_first))
        output = tgt
        for layer in self.layers:
            output = layer(output, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                           tgt_key_padding_mask=tgt_key_padding_mask,
                           memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=tgt_is_causal,
                           memory_is_causal=memory_is_causal)
        return self.norm(output) if self.norm is not None else output


class Transformer(Module):
    """An encoder stack over ``src`` and a decoder stack over ``tgt`` attending to the encoder's output."""

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation=F.relu, custom_encoder: Module | None = None, custom_decoder: Module | None = None,
                 layer_norm_eps: float = 1e-5, batch_first: bool = False, norm_first: bool = False,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        layer_options = dict(dim_feedforward=dim_feedforward, dropout=dropout, activation=activation,
                             layer_norm_eps=layer_norm_eps, batch_first=batch_first, norm_first=norm_first,
                             bias=bias, **factory)

        def stack(stack_class, layer_class, num_layers):  # num_layers copies of one layer, then a LayerNorm
            return stack_class(layer_class(d_model, nhead, **layer_options), num_layers,
                               LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory))
        self.encoder = (custom_encoder if custom_encoder is not None
                        else stack(TransformerEncoder, TransformerEncoderLayer, num_encoder_layers))
        self.decoder = (custom_decoder if custom_decoder is not None
                        else stack(TransformerDecoder, TransformerDecoderLayer, num_decoder_layers))
        self._reset_parameters()
        self.d_model = d_model
        self.nhead = nhead
        self.batch_first = batch_first

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
                tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal: bool | None = None,
                tgt_is_causal: bool | None = None, memory_is_causal: bool = False):
        batch_dim = 0 if self.batch_first else 1
        if src.ndim == 3 and src.shape[batch_dim] != tgt.shape[batch_dim]:
            raise RuntimeError("the batch number of src and tgt must be equal")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise RuntimeError("the feature number of src and tgt must be equal to d_model")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=tgt_is_causal,
                            memory_is_causal=memory_is_causal)

    generate_square_subsequent_mask = staticmethod(generate_square_subsequent_mask)

    def _reset_parameters(self) -> None:
        """PyTorch's: Xavier-uniform for every matrix, the rest as the layers set them."""
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)
