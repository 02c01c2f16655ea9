"""Batches of sequences of different lengths, as in ``torch.nn.utils.rnn``: padded and packed.

A padded batch is a (T, B, *) tensor (or (B, T, *) with ``batch_first``) whose sequence b holds
``lengths[b]`` steps and padding after them. A ``PackedSequence`` keeps only the real steps: the
sequences are sorted by decreasing length, and ``data`` (N, *) holds time step 0 of every sequence,
then step 1 of every sequence still running, and so on; ``batch_sizes[t]`` is how many sequences
step t holds. ``sorted_indices[k]`` is the batch index of the k-th longest sequence and
``unsorted_indices`` its inverse. Recurrent layers run one product per step over ``batch_sizes[t]``
rows, never over padding.

Every conversion here is one gather (an advanced index, whose backward scatters the gradient back)
with an index table built on the host; padding positions read an extra row holding
``padding_value``.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from distgrad import backend, creation
from distgrad.ops.joining import cat
from distgrad.tensor import Tensor

__all__ = ["PackedSequence", "invert_permutation", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence",
           "unpad_sequence", "pack_sequence", "unpack_sequence"]


class _PackedSequenceBase(NamedTuple):
    data: Tensor
    batch_sizes: Tensor
    sorted_indices: Tensor | None
    unsorted_indices: Tensor | None


class PackedSequence(_PackedSequenceBase):
    """``(data, batch_sizes, sorted_indices, unsorted_indices)``; build it with ``pack_padded_sequence``
    or ``pack_sequence``. ``batch_sizes`` is an int64 tensor on the CPU; the indices live with ``data``."""

    def __new__(cls, data: Tensor, batch_sizes: Tensor | None = None, sorted_indices: Tensor | None = None,
                unsorted_indices: Tensor | None = None):
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        if batch_sizes is None:
            raise TypeError("PackedSequence: batch_sizes is required (build one with pack_padded_sequence)")
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs) -> "PackedSequence":
        """``data`` moved/cast by ``Tensor.to``; the indices follow ``data`` to its device."""
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        indices = (None if t is None else Tensor(backend.to_device(t.array, data.device))
                   for t in (self.sorted_indices, self.unsorted_indices))
        return type(self)(data, self.batch_sizes, *indices)

    def cuda(self, device=None) -> "PackedSequence":
        return self.to(backend.Device("cuda", device) if device is None or isinstance(device, int) else device)

    def cpu(self) -> "PackedSequence":
        return self.to(backend.CPU)

    def double(self) -> "PackedSequence":
        return self.to(np.float64)

    def float(self) -> "PackedSequence":
        return self.to(np.float32)

    def half(self) -> "PackedSequence":
        return self.to(np.float16)

    @property
    def is_cuda(self) -> bool:
        return self.data.is_cuda


def invert_permutation(permutation: Tensor | None) -> Tensor | None:
    """The inverse permutation: ``out[permutation[i]] = i``."""
    if permutation is None:
        return None
    xp = permutation._xp
    out = xp.empty_like(permutation.array)
    out[permutation.array] = xp.arange(permutation.shape[0], dtype=out.dtype)
    return Tensor(out)


# --- host-side index tables --------------------------------------------------------------------------
def _lengths_array(lengths) -> np.ndarray:
    if isinstance(lengths, Tensor):
        if lengths.is_cuda:
            raise RuntimeError("'lengths' argument should be a 1D CPU int64 tensor, but got 1D cuda:"
                               f"{lengths.device.index or 0} Long tensor")
        return np.asarray(lengths.array, dtype=np.int64).reshape(-1)
    return np.asarray(lengths, dtype=np.int64).reshape(-1)


def _batch_sizes(sorted_lengths: np.ndarray) -> np.ndarray:
    """How many of the (decreasing) lengths exceed each step t."""
    steps = np.arange(int(sorted_lengths[0]))
    return (sorted_lengths[None, :] > steps[:, None]).sum(axis=1).astype(np.int64)


def _packed_positions(batch_sizes: np.ndarray) -> tuple:
    """For each row of packed data: its time step and its sorted batch position."""
    steps = np.repeat(np.arange(len(batch_sizes)), batch_sizes)
    starts = np.concatenate(([0], np.cumsum(batch_sizes)[:-1]))
    return steps, np.arange(int(batch_sizes.sum())) - np.repeat(starts, batch_sizes)


def _host(t: Tensor | None):
    return None if t is None else backend.to_device(t.array, backend.CPU)


def _gather_rows(rows: Tensor, table: np.ndarray, padding_value) -> Tensor:
    """``rows`` (N, *) with a row of ``padding_value`` appended, gathered by ``table`` (entries in
    0..N; N reads the padding row): a tensor of shape table.shape + rows.shape[1:]."""
    pad = creation.full((1,) + tuple(rows.shape[1:]), padding_value, dtype=rows.dtype, device=rows.device)
    return cat((rows, pad))[table]


# --- padded <-> packed ---------------------------------------------------------------------------------
def pack_padded_sequence(input: Tensor, lengths, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    """Packs a padded batch of sequences of ``lengths`` (a list or a CPU tensor).

    With ``enforce_sorted`` the lengths must be in decreasing order; otherwise the sequences are sorted
    here (stably) and ``unsorted_indices`` restores their order.
    """
    lengths = _lengths_array(lengths)
    batch_dim = 0 if batch_first else 1
    if input.ndim < 2 or len(lengths) != input.shape[batch_dim]:
        raise RuntimeError(f"Expected `len(lengths)` to be equal to batch_size, but got {len(lengths)} "
                           f"(batch_size={input.shape[batch_dim] if input.ndim >= 2 else None})")
    if enforce_sorted:
        if np.any(lengths[1:] > lengths[:-1]):
            raise RuntimeError("`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. "
                               "You can pass `enforce_sorted=False` to pack_padded_sequence and/or pack_sequence "
                               "to sidestep this requirement if you do not need ONNX exportability.")
        order, sorted_indices = np.arange(len(lengths)), None
    else:
        order = np.argsort(-lengths, kind="stable")
        sorted_indices = Tensor(backend.to_device(order.astype(np.int64), input.device))
    sorted_lengths = lengths[order]
    if len(lengths) == 0 or sorted_lengths[-1] <= 0:
        raise RuntimeError("Length of all samples has to be greater than 0, but found an element in 'lengths' "
                           "that is <= 0")
    if sorted_lengths[0] > input.shape[1 - batch_dim]:
        raise RuntimeError(f"pack_padded_sequence: a length of {sorted_lengths[0]} is longer than the padded "
                           f"input's {input.shape[1 - batch_dim]} time steps")
    batch_sizes = _batch_sizes(sorted_lengths)
    steps, positions = _packed_positions(batch_sizes)
    sequences = order[positions]
    data = input[(sequences, steps) if batch_first else (steps, sequences)]
    return PackedSequence(data, Tensor(batch_sizes), sorted_indices)


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
                        total_length: int | None = None) -> tuple:
    """``(padded, lengths)``: the packed batch padded to its longest sequence (or ``total_length``
    steps), in the original batch order; ``lengths`` is an int64 CPU tensor."""
    data, batch_sizes = sequence.data, np.asarray(sequence.batch_sizes.array, dtype=np.int64)
    steps_in = len(batch_sizes)
    if total_length is not None:
        if total_length < steps_in:
            raise ValueError(f"Expected total_length to be at least the length of the longest sequence in input, "
                             f"but got total_length={total_length} and max sequence length being {steps_in}")
    else:
        total_length = steps_in
    batch = int(batch_sizes[0])
    steps, positions = _packed_positions(batch_sizes)
    table = np.full((total_length, batch), data.shape[0], dtype=np.int64)
    table[steps, positions] = np.arange(data.shape[0])
    lengths = (batch_sizes[None, :] > np.arange(batch)[:, None]).sum(axis=1).astype(np.int64)
    unsorted = _host(sequence.unsorted_indices)
    if unsorted is not None:
        table, lengths = table[:, unsorted], lengths[unsorted]
    return _gather_rows(data, table.T if batch_first else table, padding_value), Tensor(lengths)


# --- lists of sequences ---------------------------------------------------------------------------------
def pad_sequence(sequences, batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
    """The sequences (each (L_i, *)) as one padded (T, B, *) tensor, or (B, T, *) with ``batch_first``;
    ``padding_side="left"`` puts the padding before each sequence."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"Expected padding_side to be one of left or right, but got {padding_side}.")
    sequences = list(sequences)
    if not sequences:
        raise RuntimeError("received an empty list of sequences")
    trailing = sequences[0].shape[1:]
    for s in sequences:
        if s.shape[1:] != trailing:
            raise RuntimeError(f"The size of tensor a ({trailing}) must match the size of tensor b "
                               f"({tuple(s.shape[1:])}) after the first dimension")
    lengths = np.array([s.shape[0] for s in sequences], dtype=np.int64)
    longest = int(lengths.max())
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    step = np.arange(longest)[:, None]
    first = 0 if padding_side == "right" else longest - lengths  # the step where each sequence starts
    inside = (step >= first) & (step < first + lengths)
    table = np.where(inside, starts + step - first, lengths.sum())
    rows = cat(sequences) if len(sequences) > 1 else sequences[0]
    return _gather_rows(rows, table.T if batch_first else table, padding_value)


def unpad_sequence(padded_sequences: Tensor, lengths, batch_first: bool = False) -> list:
    """The sequences of a right-padded batch, as a list of views of their ``lengths[i]`` steps."""
    lengths = _lengths_array(lengths)
    if not batch_first:
        padded_sequences = padded_sequences.transpose(0, 1)
    return [padded_sequences[i, :int(n)] for i, n in enumerate(lengths)]


def pack_sequence(sequences, enforce_sorted: bool = True) -> PackedSequence:
    """A list of sequences (each (L_i, *)) packed; see ``pack_padded_sequence`` for ``enforce_sorted``."""
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences: PackedSequence) -> list:
    """The packed sequences as a list, in their original order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
