"""``einsum``: sums of products of tensors named by subscripts, with PyTorch's rules.

The equation is first rewritten with one letter per dimension: each operand's ``...`` becomes
explicit letters (right-aligned, as in broadcasting), an implicit output (no ``->``) becomes the
ellipsis dims followed by the letters that appear once, in the order A-Z then a-z. A dimension of
size 1 whose letter is bigger elsewhere is broadcast (``broadcast_to``, whose gradient sums back).

The gradient of operand k is an einsum of the output gradient with the *other* operands, onto
operand k's letters. Two cases need more than that:

* a letter found only in operand k (summed out by the forward, e.g. ``ij->i``): the gradient is
  constant along it, so the einsum leaves it out and the result is broadcast along it;
* a letter repeated in operand k (a diagonal, e.g. ``ii->i``): the gradient lives on the diagonal,
  so the einsum is taken once more with identity matrices that put it there.

Both are written with ``einsum`` itself and with differentiable ops, so double backward works.
"""
from __future__ import annotations

import string

from distgrad.autograd.function import Function
from distgrad.dtypes import compute_dtype
from distgrad.ops.autocasting import autocast_op
from distgrad.ops.broadcast import broadcast_to
from distgrad.ops.shape import reshape
from distgrad.tensor import Tensor

__all__ = ["einsum"]

LETTERS = string.ascii_uppercase + string.ascii_lowercase  # torch's label order: A-Z before a-z


class Einsum(Function):
    """``terms`` (one list of letters per operand) contracted onto ``output`` (letters, no repeats)."""

    @staticmethod
    def forward(ctx, terms, output, *operands):
        ctx.terms, ctx.output = terms, output
        ctx.save_for_backward(*operands)
        dtype = operands[0].dtype
        compute = compute_dtype(dtype)  # float16/bfloat16 products sum in float32 (NumPy has no bf16 einsum)
        arrays = [t.array.astype(compute, copy=False) for t in operands]
        xp = operands[0]._xp
        equation = ",".join("".join(t) for t in terms) + "->" + "".join(output)
        out = xp.einsum(equation, *arrays, optimize=len(arrays) > 1)
        if compute != dtype:
            return out.astype(dtype)
        # A single-operand einsum (a transpose, a diagonal) may return a view of its input: copy it, so
        # that writes to the result leave the input alone, as the result is not marked as a view.
        if any(xp.may_share_memory(out, a) for a in arrays):
            out = out.copy()
        return out

    @staticmethod
    def backward(ctx, grad):
        operands = ctx.saved_tensors
        grads = []
        for k, operand in enumerate(operands):
            if not ctx.needs_input_grad[2 + k]:
                grads.append(None)
                continue
            others = [j for j in range(len(operands)) if j != k]
            grads.append(_operand_grad(grad, ctx.output, [ctx.terms[j] for j in others],
                                       [operands[j] for j in others], ctx.terms[k], operand))
        return (None, None, *grads)


def _operand_grad(grad: Tensor, output: list, other_terms: list, others: list, term: list,
                  operand: Tensor) -> Tensor:
    """The gradient of the operand with letters ``term``: see the module docstring."""
    unique = list(dict.fromkeys(term))
    reachable = set(output).union(*other_terms)
    kept = [c for c in unique if c in reachable]
    g = Einsum.apply([output, *other_terms], kept, grad, *others)
    sizes = dict(zip(term, operand.shape))
    if len(kept) < len(unique):
        g = reshape(g, tuple(sizes[c] if c in kept else 1 for c in unique))
        g = broadcast_to(g, tuple(sizes[c] for c in unique))
    if len(unique) == len(term):
        return g
    # Repeated letters: the second (third ...) occurrence gets a fresh letter tied to the first one
    # by an identity matrix, so the gradient lands on the diagonal and is zero elsewhere.
    free = iter(c for c in LETTERS if c not in set(term) | reachable)
    renamed, eyes, eye_terms, seen = [], [], [], set()
    xp = grad._xp
    for c in term:
        if c in seen:
            fresh = next(free)
            renamed.append(fresh)
            eye_terms.append([c, fresh])
            eyes.append(Tensor(xp.eye(sizes[c], dtype=grad.dtype)))
        else:
            renamed.append(c)
            seen.add(c)
    return Einsum.apply([unique, *eye_terms], renamed, g, *eyes)


# --- parsing -----------------------------------------------------------------------------------------
def _split_term(term: str, position: int) -> list:
    """A subscript string as a list of letters and ``...``; raises torch's errors for bad characters."""
    items, i = [], 0
    while i < len(term):
        if term.startswith("...", i):
            if "..." in items:
                raise RuntimeError(f"einsum(): found '.' for operand {position} for which an ellipsis was "
                                   "already found")
            items.append("...")
            i += 3
        elif term[i] == ".":
            raise RuntimeError(f"einsum(): found '.' for operand {position} that is not part of any ellipsis")
        elif term[i] in LETTERS:
            items.append(term[i])
            i += 1
        else:
            raise RuntimeError(f"einsum(): invalid subscript given at index {i} in the equation string, "
                               "subscripts must be in [a-zA-Z]")
    return items


def _sublists_to_equation(args) -> tuple[str, list]:
    """``einsum(op0, [0, 1], op1, [1, 2], [0, 2])`` as an equation string and its operands."""
    def letters(sublist):
        out = []
        for s in sublist:
            if s is Ellipsis:
                out.append("...")
            elif isinstance(s, int) and 0 <= s < len(LETTERS):
                out.append(LETTERS[s])
            else:
                raise ValueError(f"einsum(): subscript in subscript list is not within the valid range [0, 52), "
                                 f"got {s}")
        return "".join(out)
    operands = list(args[0::2])
    terms = [letters(s) for s in args[1::2]]
    output = letters(args[-1]) if len(args) % 2 else None
    if output is not None:
        operands = operands[:len(terms)]
    equation = ",".join(terms) + ("" if output is None else "->" + output)
    return equation, operands


def _explicit_terms(equation: str, operands: list) -> tuple[list, list]:
    """Per operand a list of letters (one per dim, ellipses made explicit), and the output's letters."""
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    raw = [_split_term(t, i) for i, t in enumerate(lhs.split(","))]
    if len(raw) < len(operands):
        raise RuntimeError("einsum(): more operands were provided than specified in the equation")
    if len(raw) > len(operands):
        raise RuntimeError("einsum(): fewer operands were provided than specified in the equation")
    ellipsis_dims = 0
    for i, (term, t) in enumerate(zip(raw, operands)):
        named = len(term) - ("..." in term)
        if "..." in term:
            if named > t.ndim:
                raise RuntimeError(f"einsum(): the number of subscripts in the equation ({named}) is more than the "
                                   f"number of dimensions ({t.ndim}) for operand {i}")
            ellipsis_dims = max(ellipsis_dims, t.ndim - named)
        elif named != t.ndim:
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({named}) does not match the "
                               f"number of dimensions ({t.ndim}) for operand {i} and no ellipsis was given")
    used = set(equation)
    spare = [c for c in LETTERS if c not in used]
    if ellipsis_dims > len(spare):
        raise RuntimeError(f"einsum(): the equation needs {ellipsis_dims} letters for its ellipsis dims, but only "
                           f"{len(spare)} of the 52 are free")
    ellipsis = spare[:ellipsis_dims]
    terms = []
    for term, t in zip(raw, operands):
        width = t.ndim - (len(term) - ("..." in term))
        terms.append([c for item in term for c in (ellipsis[len(ellipsis) - width:] if item == "..." else [item])])
    if arrow:
        out_raw = _split_term(rhs, len(raw))
        output = [c for item in out_raw for c in (ellipsis if item == "..." else [item])]
        letters_in = set().union(*terms)
        for c in out_raw:
            if c != "..." and c not in letters_in:
                raise RuntimeError(f"einsum(): output subscript {c} does not appear in the equation for any input "
                                   "operand")
            if c != "..." and out_raw.count(c) > 1:
                raise RuntimeError(f"einsum(): output subscript {c} appears more than once in the output")
    else:
        counts = {}
        for term in raw:
            for c in term:
                if c != "...":
                    counts[c] = counts.get(c, 0) + 1
        output = ellipsis + sorted((c for c, n in counts.items() if n == 1), key=LETTERS.index)
    return terms, output


def _letter_sizes(terms: list, operands: list) -> dict:
    """Each letter's size; size 1 broadcasts across operands (not within one), as in torch."""
    sizes = {}
    for i, (term, t) in enumerate(zip(terms, operands)):
        own = {}
        for c, n in zip(term, t.shape):
            if c in own and own[c] != n:
                raise RuntimeError(f"einsum(): subscript {c} is repeated for operand {i} but the sizes don't match, "
                                   f"{n} != {own[c]}")
            own[c] = n
        for c, n in own.items():
            seen = sizes.get(c, 1)
            if n != 1 and seen != 1 and n != seen:
                raise RuntimeError(f"einsum(): subscript {c} has size {n} for operand {i} which does not broadcast "
                                   f"with previously seen size {seen}")
            sizes[c] = n if seen == 1 else seen
    return sizes


@autocast_op()
def einsum(equation, *operands) -> Tensor:
    """Sums of products over the subscripts of ``equation`` (``"ij,jk->ik"``, ``"...ij->...ji"``,
    ``"ii->i"``, implicit output ``"ij,jk"``), as ``torch.einsum``.

    Operands may be given one by one, as one list, or in the sublist form
    ``einsum(a, [0, 1], b, [1, 2], [0, 2])``. All operands must share a dtype and a device.
    """
    if not isinstance(equation, str):
        equation, operands = _sublists_to_equation((equation, *operands))
    elif len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    operands = list(operands)
    for i, t in enumerate(operands):
        if not isinstance(t, Tensor):
            raise TypeError(f"einsum(): operand {i} must be a Tensor, not {type(t).__name__}")
        if t.dtype != operands[0].dtype:
            raise RuntimeError(f"einsum(): expected scalar type {operands[0].dtype.name} but found {t.dtype.name} "
                               f"for operand {i}")
    if not operands:
        raise RuntimeError("einsum(): must provide at least one operand")
    terms, output = _explicit_terms(equation, operands)
    sizes = _letter_sizes(terms, operands)
    for i, (term, t) in enumerate(zip(terms, operands)):
        full = tuple(sizes[c] for c in term)
        if full != t.shape:
            operands[i] = broadcast_to(t, full)
    return Einsum.apply(terms, output, *operands)
