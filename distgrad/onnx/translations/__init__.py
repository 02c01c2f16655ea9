"""The ONNX translation of every op ``dg.onnx.export`` supports, one module per family; importing the
package registers them all in ``registry.TRANSLATIONS``."""
from distgrad.onnx.translations import elementwise, layers, loss, recurrent, reduction, shape  # noqa: F401
