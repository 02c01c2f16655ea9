"""Loss layers: values and input gradients vs PyTorch for every reduction and option."""
import numpy as np
import pytest

import distgrad
from distgrad import nn
from helpers import host


def compare_loss(ours, theirs, input_array, target_array, device, rtol=1e-5, atol=1e-6):
    """Runs both losses on the same logits/targets and compares the loss and d(loss)/d(input)."""
    torch = pytest.importorskip("torch")
    x = distgrad.tensor(input_array, device=device, requires_grad=True)
    tx = torch.from_numpy(input_array.copy()).requires_grad_()
    out = ours(x, distgrad.tensor(target_array, device=device))
    expected = theirs(tx, torch.from_numpy(target_array.copy()))
    np.testing.assert_allclose(host(out), expected.detach().numpy(), rtol=rtol, atol=atol)
    upstream = np.random.default_rng(2).standard_normal(expected.shape).astype(input_array.dtype)
    out.backward(distgrad.tensor(upstream, device=device))
    expected.backward(torch.from_numpy(upstream))
    np.testing.assert_allclose(host(x.grad), tx.grad.numpy(), rtol=rtol, atol=atol)


rng = np.random.default_rng(0)
LOGITS = rng.standard_normal((6, 4)).astype(np.float32)
LOGITS_2D = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
LABELS = np.array([0, 3, 1, 1, 2, 3])
LABELS_WITH_IGNORED = np.array([0, -100, 1, 1, -100, 3])
LABELS_2D = rng.integers(0, 4, (2, 3, 3))
PROBS = rng.dirichlet(np.ones(4), 6).astype(np.float32)
WEIGHT = np.array([0.5, 1.0, 2.0, 1.5], dtype=np.float32)
REDUCTIONS = ["mean", "sum", "none"]


def weight_pair(device):
    torch = pytest.importorskip("torch")
    return distgrad.tensor(WEIGHT, device=device), torch.from_numpy(WEIGHT)


@pytest.mark.parametrize("name", ["MSELoss", "L1Loss"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_losses_match_torch(name, reduction, device):
    torch = pytest.importorskip("torch")
    target = rng.standard_normal((6, 4)).astype(np.float32)
    compare_loss(getattr(nn, name)(reduction=reduction), getattr(torch.nn, name)(reduction=reduction),
                 LOGITS, target, device)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("logits, labels", [(LOGITS, LABELS), (LOGITS, LABELS_WITH_IGNORED),
                                            (LOGITS_2D, LABELS_2D)])
def test_cross_entropy_with_class_indices_matches_torch(reduction, logits, labels, device):
    torch = pytest.importorskip("torch")
    compare_loss(nn.CrossEntropyLoss(reduction=reduction), torch.nn.CrossEntropyLoss(reduction=reduction),
                 logits, labels, device)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_with_weight_ignore_index_and_label_smoothing_matches_torch(reduction, device):
    torch = pytest.importorskip("torch")
    ours_w, torch_w = weight_pair(device)
    labels = np.array([0, 2, 1, 1, 2, 3])
    compare_loss(nn.CrossEntropyLoss(weight=ours_w, ignore_index=2, reduction=reduction, label_smoothing=0.1),
                 torch.nn.CrossEntropyLoss(weight=torch_w, ignore_index=2, reduction=reduction,
                                           label_smoothing=0.1),
                 LOGITS, labels, device)


def test_cross_entropy_with_class_probabilities_matches_torch(device):
    torch = pytest.importorskip("torch")
    compare_loss(nn.CrossEntropyLoss(label_smoothing=0.2), torch.nn.CrossEntropyLoss(label_smoothing=0.2),
                 LOGITS, PROBS, device)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_with_weight_and_ignore_index_matches_torch(reduction, device):
    torch = pytest.importorskip("torch")
    ours_w, torch_w = weight_pair(device)
    log_probs = LOGITS - np.log(np.exp(LOGITS).sum(1, keepdims=True))
    compare_loss(nn.NLLLoss(weight=ours_w, reduction=reduction),
                 torch.nn.NLLLoss(weight=torch_w, reduction=reduction), log_probs, LABELS_WITH_IGNORED, device)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("with_weights", [False, True])
def test_bce_with_logits_matches_torch(reduction, with_weights, device):
    torch = pytest.importorskip("torch")
    target = (rng.random((6, 4)) > 0.5).astype(np.float32)
    kwargs, torch_kwargs = dict(reduction=reduction), dict(reduction=reduction)
    if with_weights:
        pos_weight = np.array([1.0, 2.0, 0.5, 3.0], dtype=np.float32)
        weight = rng.random((6, 1)).astype(np.float32)
        kwargs.update(weight=distgrad.tensor(weight, device=device),
                      pos_weight=distgrad.tensor(pos_weight, device=device))
        torch_kwargs.update(weight=torch.from_numpy(weight), pos_weight=torch.from_numpy(pos_weight))
    compare_loss(nn.BCEWithLogitsLoss(**kwargs), torch.nn.BCEWithLogitsLoss(**torch_kwargs), 10 * LOGITS,
                 target, device)


def test_loss_weights_are_buffers_that_move_with_the_module():
    loss = nn.CrossEntropyLoss(weight=distgrad.tensor(WEIGHT))
    assert [n for n, _ in loss.named_buffers()] == ["weight"]
    loss.double()
    assert loss.weight.dtype == np.float64
    bce = nn.BCEWithLogitsLoss(pos_weight=distgrad.ones(4))
    assert [n for n, _ in bce.named_buffers()] == ["pos_weight"]
    assert list(nn.MSELoss().state_dict()) == []


def test_legacy_size_average_and_reduce_arguments_map_to_reduction():
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        assert nn.MSELoss(size_average=False).reduction == "sum"
    with pytest.warns(UserWarning):
        assert nn.NLLLoss(None, None, -100, False).reduction == "none"
    assert nn.CrossEntropyLoss(reduction="sum").reduction == "sum"


def test_repr_of_losses_is_empty_like_torch():
    assert repr(nn.CrossEntropyLoss(label_smoothing=0.1)) == "CrossEntropyLoss()"
    assert repr(nn.BCEWithLogitsLoss(pos_weight=distgrad.ones(2))) == "BCEWithLogitsLoss()"
