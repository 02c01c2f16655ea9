"""``FunctionalLayer``: a layer without parameters whose ``forward`` is one ``nn.functional`` call with the
options it was built with (the activations, pooling, pixel shuffles)."""
from __future__ import annotations

from distgrad.nn import functional as F
from distgrad.nn.module import Module


class FunctionalLayer(Module):
    """``forward(input)`` is ``F.<function>(input, **options)``.

    A subclass names ``function`` and keeps PyTorch's constructor, which passes the options on as keywords
    (each becomes an attribute named as the functional's parameter). The repr lists the options in
    ``shown`` (default: all, in the constructor's order) as ``name=value``, and ``inplace`` only when it is
    true, as PyTorch prints them.
    """

    function = ""
    shown: tuple[str, ...] | None = None

    def __init__(self, **options):
        super().__init__()
        self._options = tuple(options)
        for name, value in options.items():
            setattr(self, name, value)

    def forward(self, input):
        return getattr(F, self.function)(input, **{name: getattr(self, name) for name in self._options})

    def extra_repr(self) -> str:
        names = self._options if self.shown is None else self.shown
        return ", ".join(_option(name, getattr(self, name)) for name in names if name != "inplace" or self.inplace)


def _option(name: str, value) -> str:
    return f"{name}={value!r}" if isinstance(value, str) else f"{name}={value}"


def functional_variants(base: type, module: str, rows: list[tuple[str, str, str]]) -> tuple[type, ...]:
    """One subclass of ``base`` per row ``(class name, function, docstring)``: the layers that differ from
    ``base`` only in the functional they call. ``module`` is the defining module's ``__name__``."""
    return tuple(type(name, (base,), {"function": function, "__doc__": doc, "__module__": module})
                 for name, function, doc in rows)
