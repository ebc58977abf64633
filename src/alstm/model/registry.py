"""The model registry: every model a config can name, registered with a decorator."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T", bound=type)

_MODELS: dict[str, type] = {}


def register_model(name: str, *, overwrite: bool = False) -> Callable[[T], T]:
    """Register a model class under ``name``; an existing name needs ``overwrite=True`` (warns).

    >>> @register_model("MyModel")            # doctest: +SKIP
    ... class MyModel: ...
    """

    def deco(cls: T) -> T:
        if name in _MODELS and _MODELS[name] is not cls:
            if not overwrite:
                raise ValueError(f"model {name!r} is already registered; pass overwrite=True")
            warnings.warn(f"model {name!r} is being replaced", stacklevel=2)
        _MODELS[name] = cls
        return cls

    return deco


def get_model(name: str) -> type:
    """The model class registered as ``name``; the error lists the known names."""
    try:
        return _MODELS[name]
    except KeyError:
        known = ", ".join(model_names())
        raise KeyError(f"unknown model {name!r}; known models: {known}") from None


def model_names() -> list[str]:
    """Sorted names of every registered model."""
    return sorted(_MODELS)
