"""Every differentiable op, grouped by family; importing a family binds its Tensor methods."""
from distgrad.ops.broadcast import broadcast_to, expand, sum_to  # noqa: F401
from distgrad.ops.arithmetic import add, div, mul, neg, pow, sub  # noqa: F401
from distgrad.ops.elementwise import *  # noqa: F401,F403
from distgrad.ops.linalg import *  # noqa: F401,F403
from distgrad.ops.reduction import *  # noqa: F401,F403
from distgrad.ops.shape import *  # noqa: F401,F403
from distgrad.ops.indexing import *  # noqa: F401,F403
from distgrad.ops.inplace import *  # noqa: F401,F403
from distgrad.ops.conversion import *  # noqa: F401,F403
from distgrad.ops.activation import *  # noqa: F401,F403
from distgrad.ops.loss import *  # noqa: F401,F403
from distgrad.ops.normalization import *  # noqa: F401,F403
from distgrad.ops.dropout import *  # noqa: F401,F403
from distgrad.ops.embedding import *  # noqa: F401,F403
from distgrad.ops.conv import *  # noqa: F401,F403
from distgrad.ops.pooling import *  # noqa: F401,F403
