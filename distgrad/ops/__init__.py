"""Every differentiable op, grouped by family; importing a family binds its Tensor methods."""
from distgrad.ops import (activation, arithmetic, attention, blas, broadcast, comparison, conv, conversion, cumulative,
                          diagonal, distance, dropout, einsum, elementwise, embedding, extremes, indexing, inplace,
                          interleave, joining, lerp, linalg, loss, memory_format, normalization, pointwise_loss,
                          pooling, recurrent, reduction, sampling, scatter, shape, sorting, triangular)

FAMILIES = (arithmetic, broadcast, elementwise, comparison, linalg, reduction, extremes, shape, joining, indexing,
            inplace, conversion, activation, loss, pointwise_loss, normalization, dropout, embedding, conv, pooling,
            memory_format, einsum, blas, lerp, distance, sorting, sampling, scatter, interleave, cumulative,
            triangular, diagonal, recurrent, attention)

__all__ = []
for _family in FAMILIES:
    for _name in _family.__all__:
        globals()[_name] = getattr(_family, _name)
        __all__.append(_name)
del _family, _name
