"""Records and hits: frozen dataclasses whose __init__ writes their fields directly, built as dataclasses are."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from crossmodal.stores.base import Hit, Record
from crossmodal.stores.frozen import direct_init


def _twin(cls: type) -> type:
    """The same fields in a dataclass with the __init__ that dataclass(frozen=True) writes."""
    specs = [(f.name, f.type, dataclasses.field(default=f.default, default_factory=f.default_factory))
             for f in dataclasses.fields(cls)]
    return dataclasses.make_dataclass(f"Plain{cls.__name__}", specs, frozen=True)


@pytest.mark.parametrize("cls", [Record, Hit])
def test_records_and_hits_build_as_the_dataclasses_they_are(cls: type) -> None:
    plain = _twin(cls)
    assert str(inspect.signature(cls)) == str(inspect.signature(plain))  # names, order and defaults
    args = ("a", 0.5, "image", "r.jpg") if cls is Hit else ("a", "image", "r.jpg")
    built, expected = cls(*args), plain(*args)
    assert dataclasses.astuple(built) == dataclasses.astuple(expected)
    assert built.metadata == {} and built.metadata is not cls(*args).metadata  # a fresh default each time
    given = cls(*args, metadata={"k": 1})
    assert given.metadata == {"k": 1} and given == cls(*args, metadata={"k": 1}) and given != built
    with pytest.raises(dataclasses.FrozenInstanceError):
        given.id = "b"  # type: ignore[misc]
    moved = dataclasses.replace(given, reference="s.jpg")
    assert moved.reference == "s.jpg" and moved.metadata == {"k": 1} and given.reference == "r.jpg"
    with pytest.raises(TypeError):
        cls(*args, unknown=1)


def test_direct_init_refuses_what_it_cannot_copy() -> None:
    @dataclasses.dataclass(frozen=True)
    class Checked:
        n: int

        def __post_init__(self) -> None:
            pass

    @dataclasses.dataclass(frozen=True, slots=True)
    class Slotted:
        n: int

    for cls in (Checked, Slotted):
        with pytest.raises(TypeError, match="plain fields"):
            direct_init(cls)
