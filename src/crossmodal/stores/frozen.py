"""Frozen dataclasses that build as fast as plain classes (a search builds a record and a hit per result)."""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any, TypeVar

__all__ = ["direct_init"]

_T = TypeVar("_T")


class _Factory:
    def __repr__(self) -> str:  # (as a dataclass's signature shows it)
        return "<factory>"


_FACTORY = _Factory()  # the default of a field with a default factory: make one


def direct_init(cls: type[_T]) -> type[_T]:
    """A frozen dataclass whose ``__init__`` fills the instance's ``__dict__`` itself, as a plain class's does.

    The ``__init__`` that ``dataclass(frozen=True)`` writes calls ``object.__setattr__`` once per field, which
    takes longer than the rest of building the object, and a search builds a record and a hit for each result.
    Same signature, annotations, defaults and default factories; the fields stay read-only.
    """
    params, lines = [], ["    d = self.__dict__"]
    names: dict[str, Any] = {"_FACTORY": _FACTORY}
    if (hasattr(cls, "__post_init__") or "__slots__" in vars(cls)
            or any(not f.init or f.kw_only for f in fields(cls))):  # type: ignore[arg-type]
        raise TypeError(f"{cls.__name__}: direct_init handles plain fields of a class with a __dict__ only")
    for f in fields(cls):  # type: ignore[arg-type]
        if f.default is not MISSING:
            names[f"_d_{f.name}"] = f.default
            params.append(f"{f.name}=_d_{f.name}")
        elif f.default_factory is not MISSING:
            names[f"_f_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_FACTORY")
            lines.append(f"    if {f.name} is _FACTORY:\n        {f.name} = _f_{f.name}()")
        else:
            params.append(f.name)
        lines.append(f"    d[{f.name!r}] = {f.name}")
    exec(f"def __init__(self, {', '.join(params)}):\n" + "\n".join(lines), names)  # as dataclass itself does
    init = names["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = {**{f.name: f.type for f in fields(cls)}, "return": None}  # type: ignore[arg-type]
    setattr(cls, "__init__", init)  # noqa: B010 (a method replaced on the class)
    return cls
