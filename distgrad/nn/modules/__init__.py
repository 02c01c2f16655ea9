"""The layers of ``distgrad.nn``, one file per family."""
from distgrad.nn.modules.activation import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Tanh  # noqa: F401
from distgrad.nn.modules.attention import MultiheadAttention  # noqa: F401
from distgrad.nn.modules.conv import Conv2d  # noqa: F401
from distgrad.nn.modules.dropout import Dropout  # noqa: F401
from distgrad.nn.modules.embedding import Embedding  # noqa: F401
from distgrad.nn.modules.flatten import Flatten, Unflatten  # noqa: F401
from distgrad.nn.modules.linear import Identity, Linear  # noqa: F401
from distgrad.nn.modules.loss import BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss  # noqa: F401
from distgrad.nn.modules.normalization import BatchNorm1d, BatchNorm2d, LayerNorm, RMSNorm  # noqa: F401
from distgrad.nn.modules.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d  # noqa: F401
from distgrad.nn.modules.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase  # noqa: F401
from distgrad.nn.modules.sync_batchnorm import SyncBatchNorm  # noqa: F401
from distgrad.nn.modules.transformer import (Transformer, TransformerDecoder, TransformerDecoderLayer,  # noqa: F401
                                             TransformerEncoder, TransformerEncoderLayer)

__all__ = ["AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "BCEWithLogitsLoss", "Conv2d",
           "CrossEntropyLoss", "Dropout", "Embedding", "Flatten", "GELU", "Identity", "L1Loss", "LayerNorm",
           "LeakyReLU", "Linear", "LogSoftmax", "MaxPool2d", "MSELoss", "MultiheadAttention", "NLLLoss", "ReLU",
           "RMSNorm", "Sigmoid", "SiLU", "Softmax", "SyncBatchNorm", "Tanh", "Transformer", "TransformerDecoder",
           "TransformerDecoderLayer", "TransformerEncoder", "TransformerEncoderLayer", "Unflatten",
           "RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]
