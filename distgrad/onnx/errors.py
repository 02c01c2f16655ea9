"""The exporter's errors, with PyTorch's names (``torch.onnx.errors``)."""
from __future__ import annotations


class OnnxExporterError(RuntimeError):
    """A model that ``dg.onnx.export`` cannot write as ONNX; the message names the op and the module."""


class UnsupportedOperatorError(OnnxExporterError):
    """An op with no ONNX translation (or arguments its translation does not cover)."""
