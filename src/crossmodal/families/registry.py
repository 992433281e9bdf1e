"""FamilyRegistry: the model families crossmodal knows, as a value passed to whoever needs it.

A registry is immutable: :meth:`FamilyRegistry.with_family` returns a new one,
so a test (or a plugin) can add a family without changing what anyone else
sees. :data:`crossmodal.families.FAMILIES` holds the built-in families;
:func:`crossmodal.load_model`, the CLI and the test-model builders take a
registry and default to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import ConfigError, ModelLoadError
from ..models.files import ModelFiles, read_json
from ..models.spec import ModelSpec
from .base import Family

__all__ = ["FamilyRegistry"]


def _either(phrases: list[str]) -> str:
    if len(phrases) == 2:
        return f"neither {phrases[0]} nor {phrases[1]}"
    return "none of: " + "; ".join(phrases)


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


class FamilyRegistry:
    """Families by name, tried in order when a directory's layout or config is recognized."""

    def __init__(self, families: Iterable[Family] = ()) -> None:
        self._families: dict[str, Family] = {}
        for family in families:
            if not isinstance(family.name, str) or not family.name:
                raise ConfigError(f"a model family needs a non-empty name, got {family.name!r}")
            if family.name in self._families:
                raise ConfigError(f"model family {family.name!r} is registered twice")
            self._families[family.name] = family

    def __iter__(self) -> Iterator[Family]:
        return iter(self._families.values())

    def __len__(self) -> int:
        return len(self._families)

    def __contains__(self, name: object) -> bool:
        return name in self._families

    def __repr__(self) -> str:
        return f"FamilyRegistry({', '.join(self._families)})"

    def names(self) -> tuple[str, ...]:
        return tuple(self._families)

    def get(self, name: str) -> Family:
        """The family called ``name``; an unknown name raises :class:`ModelLoadError` listing the known ones."""
        try:
            return self._families[name]
        except KeyError:
            raise ModelLoadError(f"unknown model family {name!r}; expected one of {', '.join(self._families)}") from None

    def with_family(self, family: Family, *, first: bool = False) -> FamilyRegistry:
        """A new registry with ``family`` added (tried before the others when ``first``)."""
        return FamilyRegistry([family, *self] if first else [*self, family])

    def detect(self, root: Path) -> ModelFiles:
        """The files of the model directory ``root``, or an error saying what it lacks."""
        if not root.is_dir():
            raise ModelLoadError(f"{root} is not a directory")
        laid_out: list[ModelFiles] = []
        for family in self:
            files = family.detect(root)
            if files is None:
                continue
            if family.claims(files):
                return files
            laid_out.append(files)
        if laid_out:
            self._unclaimed(laid_out[0])
        phrases = list(dict.fromkeys(p for family in self for p in family.layouts))
        found = sorted(p.name for p in root.iterdir())[:12]
        raise ModelLoadError(f"{root} is {_either(phrases)}; it holds: {', '.join(found) or 'nothing'}")

    def family_of(self, files: ModelFiles) -> Family:
        """The family whose config ``files`` hold."""
        for family in self:
            if family.claims(files):
                return family
        self._unclaimed(files)
        raise AssertionError("unreachable")

    def read_spec(self, files: ModelFiles, name: str) -> ModelSpec:
        return self.family_of(files).read_spec(files, name)

    def _unclaimed(self, files: ModelFiles) -> None:
        model_type = str(read_json(files.root / "config.json").get("model_type", ""))
        raise ModelLoadError(
            f"{files.root}/config.json has model_type {model_type!r}; crossmodal supports {_and(list(self.names()))}"
        )
