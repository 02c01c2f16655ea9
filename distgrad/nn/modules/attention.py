"""``MultiheadAttention``: PyTorch's layer, parameters named and shaped as PyTorch's so state dicts convert."""
from __future__ import annotations

from distgrad import creation
from distgrad.nn import init
from distgrad.nn.module import Module
from distgrad.nn.modules.linear import Linear
from distgrad.nn.multi_head_attention import AttentionWeights, batch_first_inputs, multi_head_attention, restore_layout
from distgrad.nn.parameter import Parameter


class MultiheadAttention(Module):
    """Attention of ``num_heads`` heads over projections of query, key and value, then an output projection.

    Parameters: ``in_proj_weight`` (3E, E) when key and value have width E, else ``q_proj_weight`` (E, E),
    ``k_proj_weight`` (E, kdim), ``v_proj_weight`` (E, vdim); ``in_proj_bias`` (3E); ``out_proj`` (a Linear);
    ``bias_k``/``bias_v`` (1, 1, E) with ``add_bias_kv``. Inputs are (L, N, E), or (N, L, E) with
    ``batch_first``, or unbatched (L, E). ``forward`` returns ``(output, weights or None)``; masks follow
    PyTorch (True = may NOT attend). See ``distgrad.nn.multi_head_attention`` for the steps.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, device=None, dtype=None):
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"embed_dim and num_heads must be greater than 0, got embed_dim={embed_dim} and "
                             f"num_heads={num_heads} instead")
        super().__init__()
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        if self.head_dim * num_heads != embed_dim:
            raise AssertionError("embed_dim must be divisible by num_heads")

        def parameter(*shape):
            return Parameter(creation.empty(*shape, device=device, dtype=dtype))
        if self._qkv_same_embed_dim:
            self.in_proj_weight = parameter(3 * embed_dim, embed_dim)
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = parameter(embed_dim, embed_dim)
            self.k_proj_weight = parameter(embed_dim, self.kdim)
            self.v_proj_weight = parameter(embed_dim, self.vdim)
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = parameter(3 * embed_dim)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        if add_bias_kv:
            self.bias_k = parameter(1, 1, embed_dim)
            self.bias_v = parameter(1, 1, embed_dim)
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """PyTorch's initialisation: Xavier-uniform projections, zero biases, Xavier-normal bias_k/bias_v."""
        for weight in (self.in_proj_weight, self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
            if weight is not None:
                init.xavier_uniform_(weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        for extra in (self.bias_k, self.bias_v):
            if extra is not None:
                init.xavier_normal_(extra)

    def forward(self, query, key, value, key_padding_mask=None, need_weights: bool = True, attn_mask=None,
                average_attn_weights: bool = True, is_causal: bool = False):
        query, key, value, key_padding_mask, batched = batch_first_inputs(query, key, value, self.batch_first,
                                                                          key_padding_mask, attn_mask)
        weights = AttentionWeights(self.in_proj_weight, self.in_proj_bias, self.out_proj.weight, self.out_proj.bias,
                                   self.q_proj_weight, self.k_proj_weight, self.v_proj_weight, self.bias_k,
                                   self.bias_v)
        out, attn_weights = multi_head_attention(query, key, value, self.num_heads, weights, self.dropout,
                                                 self.training, key_padding_mask, need_weights, attn_mask,
                                                 average_attn_weights, is_causal, self.add_zero_attn)
        return restore_layout(out, attn_weights, batched, self.batch_first)
