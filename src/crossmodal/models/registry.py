"""Names -> specs and files on disk.

Resolution, in order:

1. ``local-dir:PATH``, or a string naming an existing directory: that directory.
2. ``hf-hub:ORG/NAME``: any hub repo, fetched into the cache.
3. A catalog name or alias (``openai/clip-vit-base-patch32``): the entry's
   source for the chosen runtime, fetched into the cache. BAAI's models
   (``BAAI/bge-m3``, ``BAAI/bge-visualized-base-en-v1.5``, ...) are entries of
   :mod:`.bge_catalog`: their files are the same on every runtime (ONNX Runtime
   runs an export of them, made once into the cache).

Anything else raises :class:`ModelNotFound`: for a name written as a path
(``./models/mine``, ``~/m``, ``/m``, ``a/b/c``), that the directory does not
exist; otherwise the closest catalog names and the ``hf-hub:`` form. A model
that is not cached and cannot be fetched raises
:class:`ModelUnavailableOffline` naming the model as it was asked for, not the
hub repos that carry its files.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from ..errors import ModelLoadError, ModelNotFound, ModelUnavailableOffline
from .bge_catalog import BGE_CATALOG, BgeEntry, fetch_bge, find_bge
from .catalog import CATALOG, CatalogEntry
from .files import MANIFEST, ModelFiles, ResolvedModel, read_json, weight_paths, weights_digest
from .hub import allow_patterns, fetch_repo, unavailable_message
from .spec import ModelSpec, Source

__all__ = ["RUNTIMES", "SpecReader", "find_entry", "list_models", "looks_like_path", "resolve"]

RUNTIMES = ("onnx", "torch")


class SpecReader(Protocol):
    """What resolution asks of the model families (:class:`crossmodal.families.FamilyRegistry` is one)."""

    def detect(self, root: Path) -> ModelFiles:
        """The files of the model directory ``root``, in the layout of the family that recognizes it."""
        ...

    def read_spec(self, files: ModelFiles, name: str) -> ModelSpec:
        """The spec ``files`` describe, read from their own config files."""
        ...


def list_models() -> list[ModelSpec]:
    return [entry.spec for entry in CATALOG.values()]


def find_entry(name: str) -> CatalogEntry | None:
    if name in CATALOG:
        return CATALOG[name]
    lowered = name.lower()
    for entry in CATALOG.values():
        if lowered == entry.spec.name.lower() or lowered in (a.lower() for a in entry.aliases):
            return entry
    return None


def looks_like_path(name: str) -> bool:
    """Whether ``name`` is written as a filesystem path rather than a catalog name or a hub repo id (ORG/NAME)."""
    if name in (".", "..") or name.startswith(("./", "../", "/", "~", ".\\", "..\\")) or name.endswith(("/", "\\")):
        return True
    if any(sep and sep != "/" and sep in name for sep in (os.sep, os.altsep)) or re.match(r"[A-Za-z]:[\\/]", name):
        return True
    return name.count("/") > 1  # a hub repo id has exactly one


def _not_found(name: str) -> ModelNotFound:
    path = Path(name).expanduser()
    if path.exists():
        return ModelNotFound(f"model {name!r} is a file, not a model directory: give the directory that holds "
                             "the model's files")
    if looks_like_path(name):
        return ModelNotFound(f"model directory {name!r} does not exist ({path.absolute()}); give the directory "
                             "that holds the model's files, or a catalog name (`crossmodal models list`)")
    names = list(CATALOG) + [a for e in CATALOG.values() for a in e.aliases]
    names += [e.name for e in BGE_CATALOG] + [a for e in BGE_CATALOG for a in e.aliases]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    if "/" in name:
        hint += f" For a hub repo outside the catalog, use 'hf-hub:{name}'."
    return ModelNotFound(
        f"unknown model {name!r}: not a catalog name, not 'hf-hub:ORG/NAME', and no such directory.{hint} "
        "`crossmodal models list` shows the catalog."
    )


def _local(path: Path, families: SpecReader) -> ResolvedModel:
    files = families.detect(path)
    manifest = read_json(path / MANIFEST) if (path / MANIFEST).is_file() else {}
    name = str(manifest.get("name") or path)
    spec = families.read_spec(files, name)
    weights = str(manifest.get("weights") or f"sha256:{weights_digest(weight_paths(files))}")
    return ResolvedModel(spec=spec, files=files, weights=weights, origin="local")


def _hub_files(root: Path, source: Source, vision_root: Path | None, families: SpecReader) -> ModelFiles:
    if source.layout == "transformers":
        files = families.detect(root)
        if files.layout != "transformers":
            raise ModelLoadError(f"{source.repo} was expected in the transformers layout")
        return files
    assert source.vision is not None and source.text is not None
    vroot = vision_root or root
    return ModelFiles(
        root=root,
        layout="onnx",
        vision_root=vision_root,
        vision_graph=vroot / source.vision.file,
        text_graph=root / source.text.file,
        vision_output=source.vision.output,
        text_output=source.text.output,
    )


def _fetch(asked: str, source: Source, cache_dir: Path | None, offline: bool, endpoint: str | None,
           families: SpecReader) -> ModelFiles:
    """The files of ``source``; a model that cannot be fetched is named as it was ``asked`` for, not by its repos."""
    try:
        return _fetch_repos(source, cache_dir, offline, endpoint, families)
    except ModelUnavailableOffline as exc:
        reason = exc.reason or "cannot be fetched"
        raise ModelUnavailableOffline(unavailable_message(asked, reason, cache_dir), model=asked,
                                      reason=reason) from exc


def _fetch_repos(source: Source, cache_dir: Path | None, offline: bool, endpoint: str | None,
                 families: SpecReader) -> ModelFiles:
    roots: dict[str, Path] = {}
    for repo in source.repos():
        required: list[str] = ["config.json"]
        if source.layout == "onnx":
            assert source.vision is not None and source.text is not None
            for tower in (source.vision, source.text):
                if (tower.repo or source.repo) == repo:
                    required.append(tower.file)
        roots[repo] = fetch_repo(
            repo,
            patterns=allow_patterns(source, repo),
            required=tuple(required),
            revision=source.revision,
            cache_dir=cache_dir,
            offline=offline,
            endpoint=endpoint,
        )
    vision_repo = source.vision.repo if source.vision and source.vision.repo else None
    return _hub_files(roots[source.repo], source, roots[vision_repo] if vision_repo else None, families)


def _hub_source(repo: str, runtime: str) -> Source:
    if runtime == "torch":
        return Source(repo=repo, layout="transformers")
    from .catalog import xenova_source

    return xenova_source(repo)


def resolve(
    name: str,
    *,
    families: SpecReader,
    runtime: str = "onnx",
    cache_dir: Path | None = None,
    offline: bool = False,
    endpoint: str | None = None,
) -> ResolvedModel:
    """Resolve ``name`` to a spec and local files for ``runtime``, fetching if needed.

    ``families`` recognizes directory layouts and reads specs from config files
    (pass :data:`crossmodal.families.FAMILIES`, or a registry of your own).
    """
    if runtime not in RUNTIMES:
        raise ModelLoadError(f"unknown runtime {runtime!r}; expected one of {', '.join(RUNTIMES)}")
    if not isinstance(name, str) or not name.strip():
        raise ModelNotFound(f"a model name must be a non-empty string, got {name!r}")
    if name.startswith("local-dir:"):
        path = Path(name[len("local-dir:") :]).expanduser()
        if not path.is_dir():
            raise ModelNotFound(f"model directory {str(path)!r} does not exist")
        return _local(path, families)
    asked = name
    if name.startswith("hf-hub:"):
        repo = name[len("hf-hub:") :]
        entry = find_entry(repo)
        bge = find_bge(repo) if entry is None else None
        if bge is not None:
            return _resolve_bge(bge, asked, families, cache_dir, offline, endpoint)
        if entry is None:
            files = _fetch(name, _hub_source(repo, runtime), cache_dir, offline, endpoint, families)
            spec = families.read_spec(files, repo)
            return ResolvedModel(spec=spec, files=files, weights=repo, origin="hub")
        name = entry.spec.name
    path = Path(name).expanduser()
    entry = find_entry(name)
    if entry is None:
        if path.is_dir():
            return _local(path, families)
        bge = find_bge(name)
        if bge is not None:
            return _resolve_bge(bge, asked, families, cache_dir, offline, endpoint)
        raise _not_found(name)
    source = entry.spec.source(runtime)
    if source is None:
        available = ", ".join(n for n, _ in entry.spec.sources)
        raise ModelLoadError(f"catalog model {entry.spec.name!r} has no {runtime} source; use runtime {available}")
    files = _fetch(asked, source, cache_dir, offline, endpoint, families)
    spec = _checked_spec(entry, files, families)
    return ResolvedModel(spec=spec, files=files, weights=entry.weights, origin="catalog")


def _resolve_bge(entry: BgeEntry, asked: str, families: SpecReader, cache_dir: Path | None, offline: bool,
                 endpoint: str | None) -> ResolvedModel:
    """A BAAI entry's files from the hub cache (fetched the first time), read by the family they belong to."""
    fetched = fetch_bge(entry, asked=asked, cache_dir=cache_dir, offline=offline, endpoint=endpoint)
    files = fetched.checkpoint_files() or families.detect(fetched.root)
    spec = families.read_spec(files, entry.name)
    if spec.family != entry.family or spec.dim != entry.dim:
        raise ModelLoadError(f"the files of {entry.name!r} describe a {spec.family} model of dim {spec.dim}, "
                             f"but the catalog expects {entry.family} of dim {entry.dim}")
    spec = replace(spec, description=entry.description, license=entry.license)
    return ResolvedModel(spec=spec, files=files, weights=entry.name, origin="catalog")


def _checked_spec(entry: CatalogEntry, files: ModelFiles, families: SpecReader) -> ModelSpec:
    """The repo's own files decide preprocessing; they must agree with the catalog on family and dim."""
    from_files = families.read_spec(files, entry.spec.name)
    if from_files.family != entry.spec.family or from_files.dim != entry.spec.dim:
        raise ModelLoadError(
            f"the files of {entry.spec.name!r} describe a {from_files.family} model of dim {from_files.dim}, "
            f"but the catalog expects {entry.spec.family} of dim {entry.spec.dim}"
        )
    return replace(
        from_files,
        sources=entry.spec.sources,
        description=entry.spec.description,
        license=entry.spec.license,
        fusion=entry.spec.fusion,
    )
