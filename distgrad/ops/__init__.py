"""Every differentiable op, grouped by family; importing a family binds its Tensor methods."""
from distgrad.ops.broadcast import broadcast_to, expand, sum_to  # noqa: F401
from distgrad.ops.arithmetic import add, div, mul, neg, pow, sub  # noqa: F401
