"""Parameter checks of the learning layer, written as data.

Each public entry point declares its parameters' constraints as a mapping
``{name: constraint}`` (in the style of scikit-learn's ``_parameter_constraints``)
and calls :func:`validate_params` once, at its boundary. A value of the wrong
type raises ``TypeError``, a value of the right type out of range raises
``ValueError``; both messages name the parameter and the value.
"""

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Choice", "HasMethods", "Integer", "validate_params"]


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass(frozen=True)
class Integer:
    """An ``int`` (not ``bool``) >= ``minimum``, or None when ``allow_none``."""

    minimum: int | None = None
    allow_none: bool = False

    def check(self, name: str, value: Any) -> None:
        if value is None and self.allow_none:
            return
        bound = "" if self.minimum is None else f" >= {self.minimum}"
        what = f"an int{bound}" + (" or None" if self.allow_none else "")
        if not _is_int(value):
            raise TypeError(f"{name} must be {what}, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"{name} must be {what}, got {value!r}")


@dataclass(frozen=True)
class Choice:
    """One of ``options``, or None when ``allow_none``."""

    options: Sequence[str]
    allow_none: bool = False

    def check(self, name: str, value: Any) -> None:
        if value is None and self.allow_none:
            return
        if not isinstance(value, str) or value not in self.options:
            prefix = "None or " if self.allow_none else ""
            raise ValueError(f"{name} must be {prefix}one of {tuple(self.options)}, got {value!r}")


@dataclass(frozen=True)
class HasMethods:
    """An object with callable ``methods``."""

    methods: Sequence[str]

    def check(self, name: str, value: Any) -> None:
        for method in self.methods:
            if not callable(getattr(value, method, None)):
                raise TypeError(f"{name} must implement {method}(), got {type(value).__name__}")


def validate_params(params: Mapping[str, Any], constraints: Mapping[str, Any]) -> None:
    """Check each of ``params`` against its constraint in ``constraints`` (in the order of ``constraints``).

    Parameters
    ----------
    params : mapping
        ``{name: value}``; names without a constraint are not checked.
    constraints : mapping
        ``{name: Integer | Choice | HasMethods}``.

    Raises
    ------
    TypeError, ValueError
        Naming the parameter and the bad value.
    """
    for name, constraint in constraints.items():
        if name in params:
            constraint.check(name, params[name])
