"""``dg.onnx``: writing a model as an ONNX file for inference runtimes, as ``torch.onnx`` does.

``export(model, args, f, ...)`` records the forward through the tape and translates each recorded
op into ONNX nodes (``docs/onnx.md``). It needs the ``onnx`` package (``pip install 'distgrad[onnx]'``);
this package imports without it.
"""
from distgrad.onnx.errors import OnnxExporterError, UnsupportedOperatorError
from distgrad.onnx.export import TrainingMode, export, is_in_onnx_export, supported_ops

__all__ = ["export", "is_in_onnx_export", "supported_ops", "TrainingMode", "OnnxExporterError",
           "UnsupportedOperatorError"]
