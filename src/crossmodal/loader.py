"""load_model: a name or path -> a ready :class:`~crossmodal.embedder.Model`."""

from __future__ import annotations

import os
from pathlib import Path

from .embedder import Model
from .models.registry import resolve
from .preprocessing.images import DEFAULT_MAX_PIXELS
from .preprocessing.texts import load_tokenizer
from .runtimes import load_encoder
from .runtimes.base import Mode, RuntimeOptions
from .settings import default_cache_dir

__all__ = ["load_model"]


def load_model(
    name: str | os.PathLike[str],
    *,
    runtime: str = "onnx",
    mode: Mode = "exact",
    device: str | None = None,
    threads: int | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    cache_dir: str | os.PathLike[str] | None = None,
    hub_cache: str | os.PathLike[str] | None = None,
    offline: bool = False,
    hub_endpoint: str | None = None,
) -> Model:
    """Load a model for embedding.

    ``name`` is a catalog name (``openai/clip-vit-base-patch32``), ``hf-hub:ORG/NAME``,
    ``local-dir:PATH`` or a directory path. ``runtime`` is ``onnx`` (default; no
    torch) or ``torch``. ``mode`` is ``exact`` (fp32, equal to the reference
    within 1e-5) or ``fast`` (int8 weights on CPU, bf16 on GPU). Hub files are
    cached in ``cache_dir`` (default: the Hugging Face cache) and load offline
    once cached; ``offline=True`` never touches the network. ``cache_dir``
    holds derived files (ONNX exports, int8 graphs; default
    ``~/.cache/crossmodal``) and, unless ``hub_cache`` says otherwise, hub
    downloads under ``hub/``; with neither given, downloads share the Hugging
    Face cache. ``hub_endpoint`` names a hub mirror.
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else None
    hub = Path(hub_cache).expanduser() if hub_cache is not None else (cache / "hub" if cache is not None else None)
    resolved = resolve(os.fspath(name), runtime=runtime, cache_dir=hub, offline=offline, endpoint=hub_endpoint)
    options = RuntimeOptions(mode=mode, threads=threads, device=device, cache_dir=cache or default_cache_dir())
    encoder = load_encoder(runtime, resolved, options)
    tokenizer = load_tokenizer(resolved.files.root, resolved.spec.text)
    return Model(
        resolved,
        encoder,
        tokenizer,
        runtime=runtime,
        options=options,
        batch_size=batch_size,
        workers=workers,
        max_pixels=max_pixels,
    )
