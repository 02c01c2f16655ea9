"""Every differentiable op, grouped by family; importing a family binds its Tensor methods."""
from distgrad.ops import (activation, adaptive_pooling, arithmetic, attention, blas, broadcast, comparison, conv,
                          conversion, cumulative, diagonal, distance, dropout, einsum, elementwise, embedding, extremes,
                          indexing, inplace, interleave, joining, lerp, linalg, loss, margin_loss, memory_format,
                          normalization, pointwise_activation, pointwise_loss, pooling, recurrent, reduction, rounding,
                          sampling, scatter, shape, sorting, triangular, upsampling)

FAMILIES = (arithmetic, rounding, broadcast, elementwise, pointwise_activation, comparison, linalg, reduction,
            extremes, shape, joining, indexing, inplace, conversion, activation, loss, pointwise_loss, margin_loss,
            normalization, dropout, embedding, conv, pooling, adaptive_pooling, upsampling, memory_format, einsum,
            blas, lerp, distance, sorting, sampling, scatter, interleave, cumulative, triangular, diagonal,
            recurrent, attention)

__all__ = []
for _family in FAMILIES:
    for _name in _family.__all__:
        globals()[_name] = getattr(_family, _name)
        __all__.append(_name)
del _family, _name
