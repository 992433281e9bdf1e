"""Fetching model files from the Hugging Face hub into a persistent cache.

The cache is looked at first with ``local_files_only``, so a model that was
fetched once loads with no network at all. Only what the chosen runtime needs
is downloaded (hub ONNX repos hold many variants of each graph).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelLoadError, ModelNotFound, ModelUnavailableOffline
from .spec import Source

__all__ = ["allow_patterns", "fetch_repo", "unavailable_message"]

_META = ["*.json", "*.txt", "*.model", "tokenizer*"]


def allow_patterns(source: Source, repo: str) -> list[str]:
    """Files of ``repo`` that ``source`` needs."""
    if source.layout == "transformers":
        return [*_META, "model.safetensors", "model.safetensors.index.json", "model-*.safetensors"]
    patterns = list(_META)
    for tower in (source.vision, source.text):
        assert tower is not None
        if (tower.repo or source.repo) == repo:
            patterns += [tower.file, tower.file + "_data", tower.file + ".data"]
    return patterns


def fetch_repo(
    repo: str,
    *,
    patterns: list[str],
    required: tuple[str, ...] = (),
    revision: str | None = None,
    cache_dir: Path | None = None,
    offline: bool = False,
    endpoint: str | None = None,
) -> Path:
    """Return a local snapshot of ``repo``: from the cache if there, else downloaded.

    Raises :class:`ModelUnavailableOffline` when the files are not cached and
    the hub cannot be reached (or ``offline`` is set), and
    :class:`ModelNotFound` when the hub says the repo does not exist.
    ``endpoint`` points at a hub mirror (default: huggingface.co, or ``HF_ENDPOINT``).
    """
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            GatedRepoError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ModelLoadError("huggingface_hub is required to fetch models from the hub") from exc

    def snapshot(local_only: bool) -> Path:
        return Path(snapshot_download(
            repo, revision=revision, allow_patterns=patterns, cache_dir=cache_dir, endpoint=endpoint,
            local_files_only=local_only,
        ))

    try:
        cached = snapshot(True)
        # A cached snapshot may hold only part of what this runtime needs.
        if all((cached / name).exists() for name in required):
            return cached
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        pass
    if offline:
        reason = "offline mode is on"
        raise ModelUnavailableOffline(unavailable_message(repo, reason, cache_dir), model=repo, reason=reason)
    try:
        return snapshot(False)
    except (RepositoryNotFoundError, RevisionNotFoundError, GatedRepoError) as exc:
        raise ModelNotFound(f"the hub has no accessible repo {repo!r}{f' at {revision}' if revision else ''}") from exc
    except Exception as exc:  # connection errors come in many types
        reason = f"the Hugging Face hub{f' at {endpoint}' if endpoint else ''} could not be reached ({_root_cause(exc)})"
        raise ModelUnavailableOffline(unavailable_message(repo, reason, cache_dir), model=repo, reason=reason) from exc


def _root_cause(exc: BaseException) -> str:
    """The innermost error of a chain (the hub client wraps the network error twice or more), in one line."""
    seen = {id(exc)}
    while (inner := exc.__cause__ or exc.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:120]}" if text else type(exc).__name__


def unavailable_message(name: str, reason: str, cache_dir: Path | None) -> str:
    """Why model ``name`` cannot be loaded, and the ways out that need no command-line context."""
    where = f" ({cache_dir})" if cache_dir else ""
    return (f"model {name!r} is not in the model cache{where} and {reason}. Fetch it once where the hub is "
            f"reachable (`crossmodal models download {name}`), name a hub mirror (CROSSMODAL_HUB_ENDPOINT), "
            "or load a local model directory instead")
