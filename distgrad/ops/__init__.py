"""Every differentiable op, grouped by family; importing a family binds its Tensor methods."""
from distgrad.ops import (activation, adaptive_pooling, arithmetic, broadcast, comparison, conv, conversion, distance, dropout,
                          elementwise, embedding, extremes, indexing, inplace, joining, linalg, loss, margin_loss,
                          normalization, pointwise_activation, pointwise_loss, pooling, reduction, sampling, shape,
                          upsampling)

FAMILIES = (arithmetic, broadcast, elementwise, pointwise_activation, comparison, linalg, reduction, extremes, shape,
            joining, indexing, inplace, conversion, activation, loss, pointwise_loss, margin_loss, distance,
            normalization, dropout, embedding, conv, pooling, adaptive_pooling, upsampling, sampling)

__all__ = []
for _family in FAMILIES:
    for _name in _family.__all__:
        globals()[_name] = getattr(_family, _name)
        __all__.append(_name)
del _family, _name
