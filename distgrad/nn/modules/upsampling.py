"""Resizing layers: ``Upsample`` (and its fixed-mode forms ``UpsamplingNearest2d``, ``UpsamplingBilinear2d``) over
``F.interpolate``, and ``PixelShuffle`` / ``PixelUnshuffle``."""
from __future__ import annotations

from distgrad.nn.modules.functional_layer import FunctionalLayer


class Upsample(FunctionalLayer):
    """Resizes (N, C, L), (N, C, H, W) or (N, C, D, H, W) input to ``size`` or by ``scale_factor``."""

    function = "interpolate"

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest", align_corners: bool | None = None,
                 recompute_scale_factor: bool | None = None):
        scale_factor = (tuple(float(f) for f in scale_factor) if isinstance(scale_factor, (tuple, list))
                        else None if scale_factor is None else float(scale_factor))
        super().__init__(size=size, scale_factor=scale_factor, mode=mode, align_corners=align_corners,
                         recompute_scale_factor=recompute_scale_factor)

    def extra_repr(self) -> str:
        what = f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None else f"size={self.size!r}"
        return f"{what}, mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """``Upsample`` with ``mode='nearest'``."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """``Upsample`` with ``mode='bilinear'`` and ``align_corners=True``."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


class PixelShuffle(FunctionalLayer):
    """(*, C * r**2, H, W) -> (*, C, H * r, W * r)."""

    function = "pixel_shuffle"

    def __init__(self, upscale_factor: int):
        super().__init__(upscale_factor=upscale_factor)


class PixelUnshuffle(FunctionalLayer):
    """(*, C, H * r, W * r) -> (*, C * r**2, H, W)."""

    function = "pixel_unshuffle"

    def __init__(self, downscale_factor: int):
        super().__init__(downscale_factor=downscale_factor)
