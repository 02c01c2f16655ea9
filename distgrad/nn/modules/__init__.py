"""The layers of ``distgrad.nn``, one file per family."""
from distgrad.nn.modules.activation import (CELU, ELU, GELU, GLU, SELU, Hardshrink, Hardsigmoid, Hardswish,  # noqa: F401
                                            Hardtanh, LeakyReLU, LogSigmoid, LogSoftmax, Mish, PReLU, ReLU, ReLU6,
                                            Sigmoid, SiLU, Softmax, Softmax2d, Softmin, Softplus, Softshrink,
                                            Softsign, Tanh, Tanhshrink, Threshold)
from distgrad.nn.modules.attention import MultiheadAttention  # noqa: F401
from distgrad.nn.modules.conv import Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d  # noqa: F401
from distgrad.nn.modules.distance import CosineSimilarity, PairwiseDistance  # noqa: F401
from distgrad.nn.modules.dropout import Dropout, Dropout1d, Dropout2d, Dropout3d  # noqa: F401
from distgrad.nn.modules.embedding import Embedding  # noqa: F401
from distgrad.nn.modules.flatten import Flatten, Unflatten  # noqa: F401
from distgrad.nn.modules.linear import Bilinear, Identity, Linear  # noqa: F401
from distgrad.nn.modules.loss import (BCELoss, BCEWithLogitsLoss, CosineEmbeddingLoss, CrossEntropyLoss,  # noqa: F401
                                      GaussianNLLLoss, HingeEmbeddingLoss, HuberLoss, KLDivLoss, L1Loss,
                                      MarginRankingLoss, MSELoss, MultiLabelSoftMarginLoss, NLLLoss, PoissonNLLLoss,
                                      SmoothL1Loss, SoftMarginLoss, TripletMarginLoss)
from distgrad.nn.modules.normalization import (BatchNorm1d, BatchNorm2d, BatchNorm3d, GroupNorm,  # noqa: F401
                                               InstanceNorm1d, InstanceNorm2d, InstanceNorm3d, LayerNorm, RMSNorm)
from distgrad.nn.modules.padding import (CircularPad1d, CircularPad2d, CircularPad3d, ConstantPad1d,  # noqa: F401
                                         ConstantPad2d, ConstantPad3d, ReflectionPad1d, ReflectionPad2d,
                                         ReflectionPad3d, ReplicationPad1d, ReplicationPad2d, ReplicationPad3d,
                                         ZeroPad1d, ZeroPad2d, ZeroPad3d)
from distgrad.nn.modules.pooling import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveMaxPool1d,  # noqa: F401
                                         AdaptiveMaxPool2d, AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d)
from distgrad.nn.modules.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase  # noqa: F401
from distgrad.nn.modules.sync_batchnorm import SyncBatchNorm  # noqa: F401
from distgrad.nn.modules.transformer import (Transformer, TransformerDecoder, TransformerDecoderLayer,  # noqa: F401
                                             TransformerEncoder, TransformerEncoderLayer)
from distgrad.nn.modules.upsampling import (PixelShuffle, PixelUnshuffle, Upsample,  # noqa: F401
                                            UpsamplingBilinear2d, UpsamplingNearest2d)

__all__ = [
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AvgPool1d", "AvgPool2d",
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d",
    "BCELoss", "BCEWithLogitsLoss", "Bilinear", "CELU", "CircularPad1d", "CircularPad2d", "CircularPad3d",
    "ConstantPad1d", "ConstantPad2d", "ConstantPad3d", "Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d",
    "CosineEmbeddingLoss", "CosineSimilarity", "CrossEntropyLoss", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d",
    "ELU", "Embedding", "Flatten", "GaussianNLLLoss", "GELU", "GLU", "GroupNorm", "Hardshrink", "Hardsigmoid",
    "Hardswish", "Hardtanh", "HingeEmbeddingLoss", "HuberLoss", "Identity", "InstanceNorm1d", "InstanceNorm2d",
    "InstanceNorm3d", "KLDivLoss", "L1Loss", "LayerNorm", "LeakyReLU", "Linear", "LogSigmoid", "LogSoftmax",
    "MarginRankingLoss", "MaxPool1d", "MaxPool2d", "Mish", "MSELoss", "MultiheadAttention",
    "MultiLabelSoftMarginLoss", "NLLLoss",
    "PairwiseDistance", "PixelShuffle", "PixelUnshuffle", "PoissonNLLLoss", "PReLU", "ReflectionPad1d",
    "ReflectionPad2d", "ReflectionPad3d", "ReLU", "ReLU6", "ReplicationPad1d", "ReplicationPad2d", "ReplicationPad3d",
    "RMSNorm", "SELU", "Sigmoid", "SiLU", "SmoothL1Loss", "Softmax", "Softmax2d", "Softmin", "Softplus",
    "SoftMarginLoss", "Softshrink", "Softsign", "SyncBatchNorm", "Tanh", "Tanhshrink", "Threshold",
    "Transformer", "TransformerDecoder", "TransformerDecoderLayer", "TransformerEncoder", "TransformerEncoderLayer",
    "TripletMarginLoss", "Unflatten", "Upsample", "UpsamplingBilinear2d", "UpsamplingNearest2d",
    "ZeroPad1d", "ZeroPad2d", "ZeroPad3d",
    "RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell",
]
