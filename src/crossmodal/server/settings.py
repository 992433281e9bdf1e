"""ServerSettings: everything the service needs, built once at the edge and passed to ``create_app``.

The CLI builds it from :class:`crossmodal.settings.Settings` (the environment)
plus its own options with :meth:`ServerSettings.from_settings`; tests build it
directly. Nothing under ``crossmodal.server`` reads the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..settings import Settings

__all__ = ["BatchingSettings", "FetchSettings", "Limits", "ServerSettings", "read_tokens"]


@dataclass(frozen=True)
class Limits:
    """Per-request limits; over one of them a request gets a 413 or 422 naming it."""

    max_body_bytes: int = 32 * 1024 * 1024  # whole request body (JSON or multipart)
    max_images: int = 32  # images (and pairs) per request
    max_image_bytes: int = 16 * 1024 * 1024  # one encoded image (upload, data URL, file, fetched URL)
    max_pixels: int = 40_000_000  # one decoded image: width x height
    max_request_pixels: int = 400_000_000  # all the images of one request, decoded (32 photos of 12 Mpx)
    max_texts: int = 2048  # texts per request (OpenAI's own limit)
    max_chars: int = 8192  # characters per text
    max_top_k: int = 1000

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"limit {name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class FetchSettings:
    """Fetching images by http(s) URL: off unless ``enabled``."""

    enabled: bool = False
    allow_private: bool = False  # loopback, private, link-local, reserved addresses
    timeout_s: float = 5.0  # the whole fetch, redirects included
    max_redirects: int = 3


@dataclass(frozen=True)
class BatchingSettings:
    """Micro-batching of concurrent requests into one model call."""

    max_items: int = 64  # items per model call
    max_wait_ms: float = 2.0  # under load, how long a batch waits to fill up
    max_pixels: int = 64_000_000  # decoded image pixels per model call (one image always fits, however large)

    def __post_init__(self) -> None:
        if self.max_items < 1 or self.max_wait_ms < 0 or self.max_pixels < 1:
            raise ConfigError("batching needs max_items >= 1, max_wait_ms >= 0 and max_pixels >= 1")


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    model: str = ""
    served_model_names: tuple[str, ...] = ()  # ids the model answers to (first: its id); empty: see naming.py
    runtime: str = "onnx"
    mode: str = "exact"
    device: str | None = None
    threads: int | None = None
    store: str = ""
    cache_dir: Path | None = None
    hub_cache: Path | None = None
    hub_endpoint: str | None = None
    offline: bool = False
    roots: tuple[Path, ...] = ()  # the only folders a request may make the service read
    upload_dir: Path | None = None  # where uploaded images are kept (store keeps references, not bytes)
    tokens: frozenset[str] = frozenset()  # empty: no auth
    write_tokens: frozenset[str] = frozenset()  # non-empty: writes need one of these
    limits: Limits = field(default_factory=Limits)
    fetch: FetchSettings = field(default_factory=FetchSettings)
    batching: BatchingSettings = field(default_factory=BatchingSettings)
    thumbnail_cache_items: int = 512
    cors_origins: tuple[str, ...] = ()  # other web origins allowed to call the API from a browser
    allowed_hosts: tuple[str, ...] = ()  # Host header names served; empty: any (see security.py)

    def __post_init__(self) -> None:
        if self.mode not in ("exact", "fast"):
            raise ConfigError(f"mode must be exact or fast, got {self.mode!r}")
        roots = []
        for root in self.roots:
            path = Path(root).expanduser()
            if not path.is_dir():
                raise ConfigError(f"--root {root} is not a directory")
            roots.append(Path(os.path.realpath(path)))
        object.__setattr__(self, "roots", tuple(roots))
        names = tuple(str(n).strip() for n in self.served_model_names)
        if any(not n or any(c.isspace() for c in n) for n in names):
            raise ConfigError(f"served model names must be non-empty and hold no spaces, got {self.served_model_names!r}")
        object.__setattr__(self, "served_model_names", tuple(dict.fromkeys(names)))
        object.__setattr__(self, "allowed_hosts", tuple(h.lower() for h in self.allowed_hosts))

    @property
    def auth_required(self) -> bool:
        return bool(self.tokens)

    @classmethod
    def from_settings(cls, base: Settings, **options: Any) -> ServerSettings:
        """``base`` (the environment) overlaid with options that are not None (the command line)."""
        values: dict[str, Any] = {
            "model": base.model,
            "runtime": base.runtime,
            "mode": base.mode,
            "store": base.store,
            "cache_dir": base.cache_dir,
            "hub_cache": base.hub_cache,
            "hub_endpoint": base.hub_endpoint,
            "offline": base.offline,
        }
        values.update({k: v for k, v in options.items() if v is not None})
        store = str(values.get("store") or "")
        if values.get("upload_dir") is None and store and "://" not in store:
            # Beside the store, not inside it: the store's directory belongs to the store alone.
            path = Path(store).expanduser()
            values["upload_dir"] = path.with_name(path.name + "-uploads")
        return cls(**values)

    def with_(self, **changes: Any) -> ServerSettings:
        return replace(self, **changes)


def read_tokens(path: str | os.PathLike[str]) -> frozenset[str]:
    """Bearer tokens from a file: one per line; blank lines and ``#`` comments are ignored."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read token file {p}: {exc.strerror or exc}") from exc
    tokens = frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#"))
    if not tokens:
        raise ConfigError(f"token file {p} holds no token (one per line)")
    short = [t for t in tokens if len(t) < 16]
    if short:
        raise ConfigError(f"token file {p} holds a token shorter than 16 characters; use long random tokens")
    return tokens
