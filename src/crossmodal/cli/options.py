"""Options shared by every command that loads a model or opens a store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from ..families import FAMILIES, FamilyRegistry
from ..models.catalog import DEFAULT_MODEL
from ..settings import Settings

__all__ = ["CliContext", "families", "hub_cache", "load_model_from_options", "model_options", "settings"]


@dataclass(frozen=True)
class CliContext:
    """What a program embedding the CLI may hand it as ``obj``: settings and the model families it knows."""

    settings: Settings
    families: FamilyRegistry = FAMILIES


def settings(ctx: click.Context) -> Settings:
    obj = ctx.find_root().obj
    if isinstance(obj, CliContext):
        return obj.settings
    if not isinstance(obj, Settings):
        obj = ctx.find_root().obj = Settings.from_env()
    return obj


def families(ctx: click.Context) -> FamilyRegistry:
    """The model families commands recognize and load (the built-in ones unless the caller passed others)."""
    obj = ctx.find_root().obj
    return obj.families if isinstance(obj, CliContext) else FAMILIES


def hub_cache(s: Settings) -> Any:
    """Where hub downloads live for these settings (None: the Hugging Face cache)."""
    return s.hub_dir


def model_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--model, --runtime, --mode, --device, --threads, --offline (defaults from the environment)."""
    decorators = [
        click.option("--model", "-m", "model", default=None, help="Catalog name, hf-hub:ORG/NAME or a directory [env CROSSMODAL_MODEL]."),
        click.option("--runtime", type=click.Choice(["onnx", "torch"]), default=None, help="Inference engine [env CROSSMODAL_RUNTIME; default onnx]."),
        click.option("--mode", type=click.Choice(["exact", "fast"]), default=None, help="exact: fp32, equal to the reference; fast: int8 [env CROSSMODAL_MODE]."),
        click.option("--device", default=None, help="cpu or cuda[:N] (torch runtime)."),
        click.option("--threads", type=click.IntRange(min=1), default=None, help="Inference threads (default: all cores)."),
        click.option("--offline", is_flag=True, default=False, help="Never touch the network; use cached models only."),
    ]
    for deco in reversed(decorators):
        fn = deco(fn)
    return fn


def load_model_from_options(ctx: click.Context, *, named_by: str | None = None, **opts: Any) -> Any:
    """Load the model the options name, filling gaps from the environment settings.

    ``named_by`` says where a model name that the user did not type came from
    (e.g. the collection that was built with it), for the error message.
    """
    from ..errors import ModelUnavailableOffline
    from ..loader import load_model

    s = settings(ctx)
    name = opts.get("model") or s.model
    try:
        options = s.load_options(
            runtime=opts.get("runtime") or s.runtime,
            mode=opts.get("mode") or s.mode,
            device=opts.get("device"),
            threads=opts.get("threads"),
            offline=bool(opts.get("offline")) or s.offline,
        )
        return load_model(name, options=options, families=families(ctx))
    except ModelUnavailableOffline as exc:
        asked = _asked(name, typed=bool(opts.get("model")) and named_by is None, named_by=named_by)
        raise ModelUnavailableOffline(_ways_out(asked, name, exc.reason), model=name, reason=exc.reason) from exc


def _asked(name: str, *, typed: bool, named_by: str | None) -> str:
    """The model as the user would recognise it: as they named it, or where the name came from."""
    if typed:
        return f"model {name!r}"
    if named_by is not None:
        return f"model {name!r} ({named_by})"
    if name == DEFAULT_MODEL:
        return f"the default model {DEFAULT_MODEL}"
    return f"model {name!r} (from CROSSMODAL_MODEL)"


def _ways_out(asked: str, name: str, reason: str | None) -> str:
    why = reason or "it cannot be fetched"
    if why == "offline mode is on":
        why += " (--offline or CROSSMODAL_OFFLINE=1)"
    return (
        f"cannot load {asked}: it is not in the model cache and {why}. Ways out:\n"
        "  * use a model directory you have: -m DIR, or export CROSSMODAL_MODEL=DIR\n"
        "  * no model at hand: `python -m crossmodal.testing.demo DIR` writes a small demo model to DIR/model "
        "(needs the torch extra), then -m DIR/model\n"
        f"  * fetch it once where the hub is reachable: `crossmodal models download {name}` "
        "(or name a hub mirror in CROSSMODAL_HUB_ENDPOINT)"
    )


def pop_model_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Remove the model options from a command's kwargs and return them."""
    return {k: kwargs.pop(k) for k in ("model", "runtime", "mode", "device", "threads", "offline") if k in kwargs}


def store_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--store PATH|URI (default: CROSSMODAL_STORE, else the XDG data directory)."""
    return click.option("--store", "store", default=None, metavar="PATH|URI",
                        help="Embedded store directory, memory://, postgresql://... or qdrant://... "
                             "[env CROSSMODAL_STORE; default $XDG_DATA_HOME/crossmodal/store].")(fn)


def open_store_from_options(ctx: click.Context, store: str | None) -> Any:
    """The store --store names, or the one the settings name: opened on first use, closed when the command ends.

    Opening waits until a command needs it, so a command that fails first (a
    model that cannot be loaded, a bad filter) creates no store directory.
    """
    from .deferred import DeferredStore

    opened = DeferredStore(store or settings(ctx).store)
    ctx.call_on_close(opened.close)
    return opened
