"""``distgrad.nn.utils``: gradient clipping, parameter/vector conversion, flat parameter buffers
(``flatten_parameters``), and ``rnn`` (padded and packed sequences)."""
from distgrad.nn.utils import rnn  # noqa: F401
from distgrad.nn.utils.clip_grad import (clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_,  # noqa: F401
                                         get_total_norm)
from distgrad.nn.utils.convert_parameters import parameters_to_vector, vector_to_parameters  # noqa: F401
from distgrad.nn.utils.flat_parameters import FlatParameters, flatten_parameters  # noqa: F401
