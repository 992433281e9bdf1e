"""load_model: a name or path -> a ready :class:`~crossmodal.embedder.Model`.

Load options travel as one frozen :class:`LoadOptions`, built once where the
user's choices arrive (the CLI and the server build it from their settings)
and passed down whole; ``load_model``'s keyword arguments build one for
callers who prefer them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from .embedder import Model
from .errors import ConfigError, ModelLoadError, UnsupportedInput
from .families import FAMILIES, FamilyRegistry
from .models.registry import RUNTIMES, resolve
from .models.spec import Capabilities
from .preprocessing.images import DEFAULT_MAX_PIXELS
from .runtimes.base import MODES, Encoder, Mode, RuntimeOptions
from .runtimes.truncate import TruncatedEncoder
from .token_outputs import model_class

__all__ = ["LoadOptions", "load_model"]


@dataclass(frozen=True)
class LoadOptions:
    """How to load and run a model.

    ``runtime``: ``onnx`` (default; no torch) or ``torch``. ``mode``: ``exact``
    (fp32, equal to the reference within 1e-5) or ``fast`` (int8 weights on
    CPU, bf16 on GPU). ``cache_dir`` holds derived files (ONNX exports, int8
    graphs; default ``~/.cache/crossmodal``); ``hub_cache`` holds hub
    downloads (default: the Hugging Face cache, shared with other tools).
    ``offline=True`` never touches the network;
    ``hub_endpoint`` names a hub mirror. ``threads``, ``device``,
    ``batch_size``, ``workers`` and ``max_pixels``: see :class:`Model`.
    ``outputs``: the outputs to load, e.g. ``("dense",)`` for BGE-M3 without
    its head files (``colbert_linear.pt``, ``sparse_linear.pt``); None: every
    output the model's family gives. ``truncate_dim``: keep the first
    ``truncate_dim`` values of every vector (and multi-vector row) before
    normalizing, as BGE-M3's ``truncate_dim`` does; the vectors then live in
    a space of their own.
    """

    runtime: str = "onnx"
    mode: Mode = "exact"
    device: str | None = None
    threads: int | None = None
    batch_size: int | None = None
    workers: int | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    cache_dir: Path | None = None
    hub_cache: Path | None = None
    offline: bool = False
    hub_endpoint: str | None = None
    outputs: tuple[str, ...] | None = None
    truncate_dim: int | None = None

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ModelLoadError(f"unknown runtime {self.runtime!r}; expected one of {', '.join(RUNTIMES)}")
        if self.mode not in MODES:
            raise ConfigError(f"mode must be 'exact' or 'fast', got {self.mode!r}")
        for name in ("cache_dir", "hub_cache"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value).expanduser())
        if self.truncate_dim is not None and (isinstance(self.truncate_dim, bool) or not isinstance(self.truncate_dim, int)
                                              or self.truncate_dim < 1):
            raise ConfigError(f"truncate_dim must be a positive int, got {self.truncate_dim!r}")
        if self.outputs is not None and not isinstance(self.outputs, str):
            object.__setattr__(self, "outputs", tuple(self.outputs))
        self.runtime_options()  # validates outputs

    def with_(self, **changes: Any) -> LoadOptions:
        return replace(self, **changes)

    def runtime_options(self) -> RuntimeOptions:
        return RuntimeOptions(mode=self.mode, threads=self.threads, device=self.device, cache_dir=self.cache_dir,
                              outputs=self.outputs)


_FIELDS = {f.name for f in fields(LoadOptions)}


def _capabilities(given: Capabilities, outputs: tuple[str, ...] | None, name: str) -> Capabilities:
    """The family's capabilities, narrowed to the ``outputs`` asked for."""
    if outputs is None:
        return given
    missing = [o for o in outputs if not given.gives(o)]
    if missing:
        raise UnsupportedInput(f"model {name!r} gives no {', '.join(missing)} output; it gives "
                               f"{', '.join(given.outputs)}")
    return replace(given, outputs=tuple(o for o in given.outputs if o in outputs))


def load_model(
    name: str | os.PathLike[str],
    *,
    options: LoadOptions | None = None,
    families: FamilyRegistry = FAMILIES,
    **overrides: Any,
) -> Model:
    """Load a model for embedding.

    ``name`` is a catalog name (``openai/clip-vit-base-patch32``), ``hf-hub:ORG/NAME``,
    ``local-dir:PATH`` or a directory path. ``options`` is a :class:`LoadOptions`;
    keyword arguments (``runtime="torch"``, ``mode="fast"``, ``cache_dir=...``, any
    :class:`LoadOptions` field) override its fields; a ``cache_dir`` given this way
    without a ``hub_cache`` also holds the hub downloads, under ``hub/``.
    ``families`` recognizes and loads the model (default: the built-in families).
    """
    unknown = sorted(set(overrides) - _FIELDS)
    if unknown:
        raise TypeError(f"load_model() got unexpected keyword argument(s): {', '.join(unknown)}")
    if overrides.get("cache_dir") is not None and overrides.get("hub_cache") is None:
        overrides["hub_cache"] = Path(overrides["cache_dir"]).expanduser() / "hub"
    opts = (options or LoadOptions()).with_(**overrides)
    resolved = resolve(os.fspath(name), families=families, runtime=opts.runtime, cache_dir=opts.hub_cache,
                       offline=opts.offline, endpoint=opts.hub_endpoint)
    family = families.get(resolved.spec.family)
    capabilities = _capabilities(family.capabilities, opts.outputs, resolved.spec.name)
    runtime_options = opts.runtime_options()
    encoder: Encoder = family.load_encoder(resolved, opts.runtime, runtime_options)
    tokenizer = family.load_tokenizer(resolved)
    if opts.truncate_dim is not None and opts.truncate_dim != resolved.spec.dim:
        if opts.truncate_dim > resolved.spec.dim:
            raise ConfigError(f"truncate_dim {opts.truncate_dim} is over the {resolved.spec.dim} dimensions of "
                              f"{resolved.spec.name!r}")
        resolved = replace(resolved, spec=resolved.spec.with_(dim=opts.truncate_dim))
        encoder = TruncatedEncoder(encoder, opts.truncate_dim)
    return model_class(capabilities)(
        resolved,
        encoder,
        tokenizer,
        runtime=opts.runtime,
        options=runtime_options,
        capabilities=capabilities,
        batch_size=opts.batch_size,
        workers=opts.workers,
        max_pixels=opts.max_pixels,
    )
