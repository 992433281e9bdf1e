"""Settings: the one place that reads the environment.

Library functions take explicit arguments; the CLI and the server build a
:class:`Settings` once at the edge (``Settings.from_env()``) and pass values
down. Precedence: command-line option > environment variable > default.

=====================  ==========================================  ==============================
variable               meaning                                     default
=====================  ==========================================  ==============================
CROSSMODAL_MODEL       model name or directory                     openai/clip-vit-base-patch32
CROSSMODAL_RUNTIME     onnx or torch                               onnx
CROSSMODAL_MODE        exact or fast                               exact
CROSSMODAL_STORE       store path or URI                           $XDG_DATA_HOME/crossmodal/store
CROSSMODAL_CACHE       crossmodal's cache (exports, int8 graphs)   $XDG_CACHE_HOME/crossmodal
CROSSMODAL_HUB_CACHE   where hub downloads go                      $CROSSMODAL_CACHE/hub if set, else
                                                                   the Hugging Face cache (shared)
CROSSMODAL_HUB_ENDPOINT  a hub mirror, e.g. https://hf-mirror.com  huggingface.co (or HF_ENDPOINT)
CROSSMODAL_OFFLINE     1 = never touch the network                 0
=====================  ==========================================  ==============================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .models.catalog import DEFAULT_MODEL

if TYPE_CHECKING:
    from .loader import LoadOptions

__all__ = ["Settings", "default_cache_dir", "default_store_path"]


def _xdg(env: Mapping[str, str], var: str, fallback: str) -> Path:
    value = env.get(var)
    return Path(value).expanduser() if value else Path.home() / fallback


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """crossmodal's own cache (derived artifacts, never the only copy of anything)."""
    env = os.environ if env is None else env
    if env.get("CROSSMODAL_CACHE"):
        return Path(env["CROSSMODAL_CACHE"]).expanduser()
    return _xdg(env, "XDG_CACHE_HOME", ".cache") / "crossmodal"


def default_store_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return _xdg(env, "XDG_DATA_HOME", ".local/share") / "crossmodal" / "store"


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    model: str = DEFAULT_MODEL
    runtime: str = "onnx"
    mode: str = "exact"
    store: str = ""
    cache_dir: Path | None = None
    hub_cache: Path | None = None
    offline: bool = False
    hub_endpoint: str | None = None
    #: crossmodal's cache as the environment names it (CROSSMODAL_CACHE, else $XDG_CACHE_HOME/crossmodal)
    derived_cache: Path | None = None

    @property
    def hub_dir(self) -> Path | None:
        """Where hub downloads go: CROSSMODAL_HUB_CACHE, else $CROSSMODAL_CACHE/hub, else the Hugging Face cache."""
        if self.hub_cache is not None:
            return self.hub_cache
        return self.cache_dir / "hub" if self.cache_dir is not None else None

    def load_options(self, **overrides: Any) -> LoadOptions:
        """The :class:`~crossmodal.loader.LoadOptions` these settings name; ``overrides`` replace fields."""
        from .loader import LoadOptions

        base = LoadOptions(
            runtime=self.runtime,
            mode=self.mode,  # type: ignore[arg-type]
            cache_dir=self.cache_dir or self.derived_cache,
            hub_cache=self.hub_dir,
            offline=self.offline,
            hub_endpoint=self.hub_endpoint,
        )
        return base.with_(**overrides)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        hub = env.get("CROSSMODAL_HUB_CACHE")
        return cls(
            model=env.get("CROSSMODAL_MODEL") or DEFAULT_MODEL,
            runtime=env.get("CROSSMODAL_RUNTIME") or "onnx",
            mode=env.get("CROSSMODAL_MODE") or "exact",
            store=env.get("CROSSMODAL_STORE") or str(default_store_path(env)),
            cache_dir=Path(env["CROSSMODAL_CACHE"]).expanduser() if env.get("CROSSMODAL_CACHE") else None,
            hub_cache=Path(hub).expanduser() if hub else None,
            offline=_flag(env.get("CROSSMODAL_OFFLINE")) or _flag(env.get("HF_HUB_OFFLINE")),
            hub_endpoint=env.get("CROSSMODAL_HUB_ENDPOINT") or None,
            derived_cache=default_cache_dir(env),
        )
