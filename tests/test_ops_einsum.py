"""einsum: torch's values and gradients for explicit, implicit, ellipsis, diagonal and broadcast
equations with random sizes; gradcheck and double backward; sublist form; torch's errors."""
import numpy as np
import pytest

import distgrad as dg
from distgrad.autograd import gradcheck, gradgradcheck
from helpers import assert_matches_torch, assert_raises_like_torch, host

# (equation, the ellipsis dims of each operand that has one)
EQUATIONS = [
    ("ij,jk->ik", ()), ("ij,jk", ()), ("bij,bjk->bik", ()), ("i,i->", ()), ("i,j->ij", ()), ("ij->ji", ()),
    ("ijk->kji", ()), ("ij->", ()), ("ij->i", ()), ("ij->j", ()), ("i,i,i->i", ()), ("abc,cd,de->abe", ()),
    ("ii->i", ()), ("ii", ()), ("iij,jk->ik", ()), ("iji->j", ()), ("ij,ij->ij", ()), ("AaB,Bb->Aab", ()),
    ("ij,ik", ()), ("i,jk", ()), ("...ij,...jk->...ik", ((2, 3), (3,))), ("...ii->...i", ((2,),)),
    ("ba...,...c", ((5,), (5,))), ("i...->...i", ((2, 2),)), ("...i->i", ((2, 3),)), ("...->", ((3, 2),)),
    ("b...ij,b...jk->b...ik", ((3,), (3,))), ("i,...->i...", ((2,),)),
]


def shapes_for(equation: str, ellipses, seed: int) -> list:
    """Random sizes per letter (the same letter, the same size); ``...`` takes the given dims."""
    rng = np.random.default_rng(seed)
    letters = sorted(set(c for c in equation if c.isalpha()))
    sizes = dict(zip(letters, rng.integers(1, 5, len(letters)).tolist()))
    shapes, ellipses = [], list(ellipses)
    for term in equation.split("->")[0].split(","):
        before, dots, after = term.partition("...")
        middle = list(ellipses.pop(0)) if dots else []
        shapes.append(tuple([sizes[c] for c in before] + middle + [sizes[c] for c in after]))
    return shapes


def operands(shapes, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("equation,ellipses", EQUATIONS, ids=[e for e, _ in EQUATIONS])
def test_einsum_values_and_gradients_match_torch(equation, ellipses, seed, device):
    arrays = operands(shapes_for(equation, ellipses, seed), seed)
    assert_matches_torch(lambda m, *ts: m.einsum(equation, *ts), arrays, device)


@pytest.mark.parametrize("equation,ellipses", EQUATIONS[::2] + [("ii->i", ()), ("iji->j", ()), ("ij->i", ())],
                         ids=[e for e, _ in EQUATIONS[::2]] + ["ii->i", "iji->j", "ij->i"])
def test_einsum_gradcheck_and_double_backward(equation, ellipses, device):
    shapes = shapes_for(equation, ellipses, 3)
    leaves = [dg.tensor(a, device=device, requires_grad=True) for a in operands(shapes, 3)]
    assert gradcheck(lambda *ts: dg.einsum(equation, *ts), leaves)
    assert gradgradcheck(lambda *ts: dg.einsum(equation, *ts), leaves)


def test_size_one_dims_broadcast_and_their_gradient_sums_back(device):
    a, b = operands([(3, 4), (1, 4)])
    assert_matches_torch(lambda m, x, y: m.einsum("ij,ij->ij", x, y), [a, b], device)
    assert_matches_torch(lambda m, x, y: m.einsum("...j,...j->...", x, y), [a, b[0]], device)


def test_sublist_and_list_forms(device):
    a, b = operands([(2, 3), (3, 4)])
    assert_matches_torch(lambda m, x, y: m.einsum(x, [0, 1], y, [1, 2], [0, 2]), [a, b], device)
    assert_matches_torch(lambda m, x, y: m.einsum(x, [Ellipsis, 1], y, [1, 2]), [a, b], device)
    assert_matches_torch(lambda m, x, y: m.einsum(" i j , j k -> i k ", [x, y]), [a, b], device)


def test_integer_operands(device):
    a = np.arange(6).reshape(2, 3)
    assert_matches_torch(lambda m, x: m.einsum("ij,kj->ik", x, x), [a], device)


def test_the_result_never_aliases_an_operand(device):
    x = dg.tensor(np.arange(6.0).reshape(2, 3), device=device)
    y = dg.einsum("ij->ji", x)
    y[0, 0] = 100.0
    assert host(x)[0, 0] == 0.0


@pytest.mark.parametrize("call,message", [
    (lambda m: m.einsum("ii", m.ones(2, 3)), "subscript i is repeated for operand 0 but the sizes don't match, 3 != 2"),
    (lambda m: m.einsum("ij,jk", m.ones(2, 3)), "fewer operands were provided than specified in the equation"),
    (lambda m: m.einsum("ij", m.ones(2, 3), m.ones(3)), "more operands were provided than specified in the equation"),
    (lambda m: m.einsum("ij,jk", m.ones(2, 3), m.ones(4, 2)),
     "subscript j has size 4 for operand 1 which does not broadcast with previously seen size 3"),
    (lambda m: m.einsum("ij->ik", m.ones(2, 3)), "output subscript k does not appear in the equation for any input"),
    (lambda m: m.einsum("ij->ii", m.ones(2, 3)), "output subscript i appears more than once in the output"),
    (lambda m: m.einsum("ijk", m.ones(2, 3)), "the number of subscripts in the equation \\(3\\) does not match the "
                                              "number of dimensions \\(2\\) for operand 0 and no ellipsis was given"),
    (lambda m: m.einsum("ijk...", m.ones(2, 3)), "the number of subscripts in the equation \\(3\\) is more than the "
                                                 "number of dimensions \\(2\\) for operand 0"),
    (lambda m: m.einsum("i.j", m.ones(2, 3)), "found '.' for operand 0 that is not part of any ellipsis"),
    (lambda m: m.einsum("i2", m.ones(2, 3)), "invalid subscript given at index 1"),
    (lambda m: m.einsum("ij,jk", m.ones(2, 3), m.ones(3, 2, dtype=m.float64)), "expected scalar type"),
])
def test_errors_read_like_torch(call, message):
    assert_raises_like_torch(call, message)
