"""``dg.onnx.export`` layer by layer: each exported file, run in onnxruntime, gives distgrad's outputs
(float32, atol 1e-5) on the example inputs and on inputs of another batch size (a dynamic axis)."""
import numpy as np
import pytest

import distgrad as dg
import distgrad.nn.functional as F
from distgrad import nn
from helpers import FunctionModule, assert_onnx_matches

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _randn(*shape, seed=0):
    return dg.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def _batched(model, *shapes, batch_axis=0, **kwargs):
    """Checks ``model`` on inputs of ``shapes`` and, with the batch axis dynamic, on 3 more samples."""
    args = tuple(_randn(*s, seed=i) for i, s in enumerate(shapes))
    bigger = tuple(_randn(*(n + 3 if a == batch_axis else n for a, n in enumerate(s)), seed=10 + i)
                   for i, s in enumerate(shapes))
    names = [f"x{i}" for i in range(len(shapes))]
    return assert_onnx_matches(model, args, other_args=[bigger], input_names=names,
                               dynamic_axes={n: {batch_axis: "batch"} for n in names}, **kwargs)


def _trained_batch_norm(bn):
    """A batch norm with running statistics that are not the defaults."""
    bn.train()
    bn(_randn(8, bn.num_features, *([3, 3] if isinstance(bn, nn.BatchNorm2d) else []), seed=5) * 2 + 1)
    return bn


LAYERS = {
    "linear": (lambda: nn.Linear(6, 4), [(2, 6)]),
    "linear_3d": (lambda: nn.Linear(6, 4), [(2, 3, 6)]),
    "linear_no_bias": (lambda: nn.Linear(6, 4, bias=False), [(2, 5, 6)]),
    "conv1d": (lambda: nn.Conv1d(3, 4, 3, stride=2, padding=1), [(2, 3, 9)]),
    "conv2d": (lambda: nn.Conv2d(3, 4, 3, padding=1), [(2, 3, 8, 8)]),
    "conv2d_strided_dilated_grouped": (lambda: nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2),
                                       [(2, 4, 9, 9)]),
    "conv2d_same": (lambda: nn.Conv2d(3, 4, 4, padding="same"), [(2, 3, 7, 7)]),
    "conv_transpose1d": (lambda: nn.ConvTranspose1d(3, 4, 3, stride=2, padding=1, output_padding=1), [(2, 3, 5)]),
    "conv_transpose2d": (lambda: nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1, groups=2),
                         [(2, 4, 5, 5)]),
    "max_pool2d_ceil": (lambda: nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), [(2, 3, 8, 8)]),
    "max_pool2d_dilated": (lambda: nn.MaxPool2d(2, dilation=2), [(2, 3, 8, 8)]),
    "max_pool1d": (lambda: nn.MaxPool1d(2), [(2, 3, 9)]),
    "avg_pool2d_ceil_excluding_pad": (lambda: nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True,
                                                           count_include_pad=False), [(2, 3, 8, 8)]),
    "avg_pool2d_divisor_override": (lambda: nn.AvgPool2d(2, divisor_override=3), [(2, 3, 8, 8)]),
    "avg_pool1d": (lambda: nn.AvgPool1d(3, stride=2, padding=1), [(2, 3, 9)]),
    "adaptive_avg_pool2d": (lambda: nn.AdaptiveAvgPool2d((3, 2)), [(2, 3, 7, 5)]),
    "adaptive_max_pool2d": (lambda: nn.AdaptiveMaxPool2d(2), [(2, 3, 8, 8)]),
    "batch_norm1d": (lambda: _trained_batch_norm(nn.BatchNorm1d(5)), [(4, 5)]),
    "batch_norm2d": (lambda: _trained_batch_norm(nn.BatchNorm2d(3)), [(2, 3, 4, 4)]),
    "layer_norm": (lambda: nn.LayerNorm(6), [(2, 3, 6)]),
    "layer_norm_two_dims_no_bias": (lambda: nn.LayerNorm((3, 6), bias=False), [(2, 3, 6)]),
    "layer_norm_no_affine": (lambda: nn.LayerNorm(6, elementwise_affine=False), [(2, 6)]),
    "group_norm": (lambda: nn.GroupNorm(2, 4), [(2, 4, 3, 3)]),
    "instance_norm": (lambda: nn.InstanceNorm2d(3, affine=True), [(2, 3, 4, 4)]),
    "rms_norm": (lambda: nn.RMSNorm(6), [(2, 3, 6)]),
    "dropout_in_eval": (lambda: nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)), [(3, 4)]),
    "flatten": (lambda: nn.Flatten(), [(2, 3, 4)]),
    "unflatten": (lambda: nn.Unflatten(1, (2, 3)), [(2, 6)]),
    "upsample_nearest": (lambda: nn.Upsample(scale_factor=2), [(2, 3, 4, 4)]),
    "upsample_bilinear": (lambda: nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), [(2, 3, 4, 4)]),
    "pixel_shuffle": (lambda: nn.PixelShuffle(2), [(2, 8, 3, 3)]),
    "reflection_pad": (lambda: nn.ReflectionPad2d((1, 2, 2, 1)), [(2, 3, 4, 4)]),
    "replication_pad": (lambda: nn.ReplicationPad1d(2), [(2, 3, 4)]),
    "circular_pad": (lambda: nn.CircularPad2d(1), [(2, 3, 4, 4)]),
    "constant_pad": (lambda: nn.ConstantPad2d((1, -1, 2, 0), 0.5), [(2, 3, 4, 4)]),
}

ACTIVATIONS = {
    "relu": nn.ReLU, "relu6": nn.ReLU6, "gelu": nn.GELU, "gelu_tanh": lambda: nn.GELU("tanh"), "silu": nn.SiLU,
    "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "leaky_relu": lambda: nn.LeakyReLU(0.2), "elu": lambda: nn.ELU(0.7),
    "selu": nn.SELU, "celu": lambda: nn.CELU(0.5), "softplus": lambda: nn.Softplus(beta=2, threshold=3),
    "hardtanh": lambda: nn.Hardtanh(-0.5, 0.7), "hardsigmoid": nn.Hardsigmoid, "hardswish": nn.Hardswish,
    "mish": nn.Mish, "logsigmoid": nn.LogSigmoid, "softsign": nn.Softsign, "tanhshrink": nn.Tanhshrink,
    "threshold": lambda: nn.Threshold(0.1, 2.0), "hardshrink": lambda: nn.Hardshrink(0.3),
    "softshrink": lambda: nn.Softshrink(0.3), "prelu": lambda: nn.PReLU(3), "glu": nn.GLU,
    "softmax": lambda: nn.Softmax(dim=-1), "log_softmax": lambda: nn.LogSoftmax(dim=1),
    "softmin": lambda: nn.Softmin(dim=-1),
}


@pytest.mark.parametrize("name", LAYERS)
def test_layer_exports_and_runs_like_distgrad(name):
    make, shapes = LAYERS[name]
    dg.manual_seed(0)
    _batched(make(), *shapes)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_exports_and_runs_like_distgrad(name):
    _batched(ACTIVATIONS[name](), (2, 3, 6))


@pytest.mark.parametrize("opset", [17, 20])
def test_gelu_and_mish_in_older_and_newer_opsets(opset):
    model = nn.Sequential(nn.GELU(), nn.Mish(), nn.GELU("tanh"))
    proto = _batched(model, (2, 5), opset_version=opset)
    assert ("Gelu" in [n.op_type for n in proto.graph.node]) == (opset >= 20)


def test_embedding_reads_integer_inputs():
    dg.manual_seed(0)
    model = nn.Embedding(10, 4)
    ids = dg.tensor(np.array([[1, 2, 9], [0, 0, 3]]))
    assert_onnx_matches(model, (ids,), other_args=[(dg.tensor(np.array([[5, 6, 7]] * 4)),)],
                        input_names=["ids"], dynamic_axes={"ids": [0]})


FUNCTIONS = {
    "arithmetic": (lambda x, y: (x + y * 2 - 1) / (y.abs() + 1) - 3 / (x.abs() + 1) + 2 ** x.clamp(max=2),
                   [(2, 5), (2, 5)]),
    "powers": (lambda x: (x ** 2, x.abs() ** 1.5, x.square(), -x), [(2, 5)]),
    "math": (lambda x: (x.exp(), (x.abs() + 1).log(), x.abs().sqrt(), (x.abs() + 0.5).rsqrt(), x.sin(), x.cos(),
                        x.tanh(), x.sign(), x.abs().log1p(), x.expm1(),
                        x.reciprocal(), x.erf(), x.sigmoid()), [(2, 5)]),
    "rounding": (lambda x: ((x * 3).floor(), (x * 3).ceil(), (x * 3).round(), (x * 3).trunc(),
                            (x * 300).round(decimals=-2)), [(2, 5)]),
    "rounding_division": (lambda x, y: (x // (y.abs() + 0.5), x % 0.7, dg.fmod(x, 0.3),
                                        dg.div(x, y.abs() + 0.5, rounding_mode="trunc")), [(2, 5), (2, 5)]),
    "clamp_maximum_where": (lambda x, y: (x.clamp(-0.3, 0.4), x.clamp(min=y), dg.maximum(x, y), dg.minimum(x, y),
                                          dg.where(x > y, x, y), dg.where(x > 0, x, 0.5)), [(2, 5), (2, 5)]),
    "comparisons": (lambda x, y: ((x > y) | (x <= -1), (x == x) & ~(x != y), x.masked_fill(x < 0, -2.0),
                                  dg.logical_xor(x > 0, y >= 0), (x > 0).logical_not()), [(2, 5), (2, 5)]),
    "reshapes": (lambda x: (x.reshape(x.shape[0], -1), x.view(x.shape[0], 2, 3, 2), x.permute(0, 2, 1),
                            x.transpose(0, 1).contiguous(), x.flatten(1), x.unsqueeze(1).squeeze(), x.mT,
                            x.movedim(1, 2)), [(2, 3, 4)]),
    "slicing": (lambda x: (x[:, 1:-1], x[..., 0], x[:, None, ::2], x[:, -1], x.narrow(2, 1, 2), x.select(1, 2),
                           x[:, [0, 2]], x.index_select(2, dg.tensor([3, 0])), x[1:],
                           x.gather(1, dg.tensor([[[0, 1, 2, 0]], [[2, 2, 1, 0]], [[1, 1, 1, 1]]])),
                           x.gather(0, dg.tensor([[[2], [0]]]))), [(3, 3, 4)]),
    "joining": (lambda x, y: (dg.cat([x, y], 1), dg.stack([x, y], 2), *x.split([1, 2], 1), *y.chunk(2, 2),
                              *x.unbind(1)), [(2, 3, 4), (2, 3, 4)]),
    "broadcasting": (lambda x, y: (x[:, :1].expand(-1, 3, 4), x * y[:1], y[0].expand_as(x), x.repeat(1, 2, 1),
                                   x.tile((2,))), [(2, 3, 4), (2, 3, 4)]),
    "flip_roll_tril": (lambda x: (x.flip(1), x.flip(0, 2), x.roll(1, 2), x.roll((1, -1), (1, 2)), x.tril(),
                                  x.triu(1)), [(2, 3, 4)]),
    "pad": (lambda x: (F.pad(x, (1, 2)), F.pad(x, (1, 1, 2, 0), value=3.0), F.pad(x, (-1, 1)),
                       F.pad(x, (2, 1), mode="reflect")), [(2, 3, 4)]),
    "reductions": (lambda x: (x.sum(), x.sum(1), x.mean((1, 2), keepdim=True), x.var(1), x.std(2, correction=0),
                              x.amax(1), x.amin(-1), x.max(1).values, x.min(2, keepdim=True).indices, x.max(),
                              x.logsumexp(2), x.norm(dim=1), x.norm(p=1, dim=2), x.norm(p=float("inf"), dim=1),
                              x.norm(p=0, dim=2), x.norm(p=3, dim=(1, 2)), x.prod(2), x.cumsum(1),
                              x.argmax(1), x.argmin(), x.argmax(2, keepdim=True)), [(2, 3, 4)]),
    "products": (lambda a, b: (a @ b.mT, dg.bmm(a, b.mT), dg.einsum("bij,bkj->bik", a, b), a[0] @ b[0, 0],
                               dg.addmm(a[0, :, :1], a[0], b[0].mT),
                               dg.baddbmm(a[:, :, :1], a, b.mT, beta=0.5, alpha=2)),
                 [(2, 3, 4), (2, 3, 4)]),
    "conversions": (lambda x: (x.double(), (x * 5).long(), (x > 0).float() + 1, x.to(dg.float64).sum(1)),
                    [(2, 3)]),
    "softmax": (lambda x: (F.softmax(x, -1), F.log_softmax(x, 0), F.softmin(x, 1)), [(2, 3, 4)]),
}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_functional_ops_export_and_run_like_distgrad(name):
    fn, shapes = FUNCTIONS[name]
    _batched(FunctionModule(fn), *shapes)


def test_a_model_returning_its_input_or_a_parameter():
    model = FunctionModule(lambda x: (x, x * 2))
    assert_onnx_matches(model, (_randn(2, 3),))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_class_index_losses(reduction):
    weight = dg.tensor(np.array([0.5, 1.0, 2.0], np.float32))
    targets = dg.tensor(np.array([[0, 2, 1, 1], [2, 2, 0, 1]]))

    def losses(logits, target):
        return (F.cross_entropy(logits, target, reduction=reduction, ignore_index=2),
                F.cross_entropy(logits, target, weight=weight, reduction=reduction),
                F.nll_loss(F.log_softmax(logits, 1), target, ignore_index=1, reduction=reduction))
    other = dg.tensor(np.array([[1, 1, 0, 2]] * 5))
    assert_onnx_matches(FunctionModule(losses), (_randn(2, 3, 4), targets),
                        other_args=[(_randn(5, 3, 4, seed=3), other)],
                        input_names=["logits", "target"], dynamic_axes={"logits": {0: "n"}, "target": {0: "n"}})


def test_elementwise_losses():
    def losses(x, y):
        return (F.mse_loss(x, y), F.l1_loss(x, y, reduction="sum"), F.smooth_l1_loss(x, y, beta=0.5),
                F.binary_cross_entropy_with_logits(x, (y > 0).float(), pos_weight=y[0].abs()),
                F.binary_cross_entropy(x.sigmoid(), (y > 0).float(), weight=y.abs(), reduction="sum"),
                F.huber_loss(x, y, reduction="none"),
                F.kl_div(F.log_softmax(x, 1), F.softmax(y, 1), reduction="batchmean"))
    _batched(FunctionModule(losses), (3, 4), (3, 4))
