"""``Embedding``: a lookup table of ``num_embeddings`` vectors of size ``embedding_dim``."""
from __future__ import annotations

from distgrad import creation
from distgrad.autograd.node import increment_version
from distgrad.nn import functional as F
from distgrad.nn import init
from distgrad.nn.module import Module
from distgrad.nn.parameter import Parameter
from distgrad.tensor import Tensor


class Embedding(Module):
    """Maps integer indices to rows of ``weight`` (num_embeddings, embedding_dim), initialised N(0, 1).

    The row at ``padding_idx`` starts at zero and receives no gradient. With ``max_norm``, the rows an
    input looks up are first renormalised in place to norm at most ``max_norm``, as in PyTorch.
    ``scale_grad_by_freq`` and ``sparse`` are not supported.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, _weight: Tensor | None = None, _freeze: bool = False, device=None,
                 dtype=None):
        super().__init__()
        if sparse or scale_grad_by_freq:
            option = "sparse" if sparse else "scale_grad_by_freq"
            raise NotImplementedError(f"Embedding: {option}=True is not supported by distgrad")
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise AssertionError("Padding_idx must be within num_embeddings")
            padding_idx %= num_embeddings
        self.padding_idx = padding_idx
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = scale_grad_by_freq
        self.sparse = sparse
        if _weight is None:
            self.weight = Parameter(creation.empty(num_embeddings, embedding_dim, device=device, dtype=dtype),
                                    requires_grad=not _freeze)
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise AssertionError("Shape of weight does not match num_embeddings and embedding_dim")
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.array[self.padding_idx] = 0
            increment_version(self.weight)

    def forward(self, input: Tensor) -> Tensor:
        if self.max_norm is not None:
            self._renorm_looked_up_rows(input)
        return F.embedding(input, self.weight, self.padding_idx)

    def _renorm_looked_up_rows(self, input: Tensor) -> None:
        """Scales the rows ``input`` refers to so their ``norm_type``-norm is at most ``max_norm``."""
        xp = self.weight._xp
        rows = xp.unique(input.array)
        norms = xp.linalg.norm(self.weight.array[rows], ord=self.norm_type, axis=1, keepdims=True)
        scale = xp.where(norms > self.max_norm, self.max_norm / (norms + 1e-7), 1.0)
        self.weight.array[rows] *= scale.astype(self.weight.dtype)
        increment_version(self.weight)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        return s

    @classmethod
    def from_pretrained(cls, embeddings: Tensor, freeze: bool = True, padding_idx: int | None = None,
                        max_norm: float | None = None, norm_type: float = 2.0,
                        scale_grad_by_freq: bool = False, sparse: bool = False) -> "Embedding":
        """An Embedding whose weight shares ``embeddings``'s data (frozen unless ``freeze=False``)."""
        if embeddings.ndim != 2:
            raise AssertionError("Embeddings parameter is expected to be 2-dimensional")
        rows, cols = embeddings.shape
        return cls(rows, cols, padding_idx=padding_idx, max_norm=max_norm, norm_type=norm_type,
                   scale_grad_by_freq=scale_grad_by_freq, sparse=sparse, _weight=embeddings, _freeze=freeze)
