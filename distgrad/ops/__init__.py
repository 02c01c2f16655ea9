"""Every differentiable op, grouped by family; importing a family binds its Tensor methods."""
from distgrad.ops import (activation, arithmetic, broadcast, comparison, conv, conversion, dropout, elementwise,
                          embedding, extremes, indexing, inplace, joining, linalg, loss, normalization, pointwise_loss,
                          pooling, reduction, sampling, shape)

FAMILIES = (arithmetic, broadcast, elementwise, comparison, linalg, reduction, extremes, shape, joining, indexing,
            inplace, conversion, activation, loss, pointwise_loss, normalization, dropout, embedding, conv, pooling,
            sampling)

__all__ = []
for _family in FAMILIES:
    for _name in _family.__all__:
        globals()[_name] = getattr(_family, _name)
        __all__.append(_name)
del _family, _name
