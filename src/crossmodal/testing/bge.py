"""Seeded random-init Visualized-BGE and BGE-M3 models for the test suite (see :mod:`crossmodal.bge.builders`).

The builders of :mod:`crossmodal.bge.builders`, with the test suite's caption
corpus (:func:`crossmodal.testing.shapes.caption_corpus`) added to the tiny
tokenizers' vocabularies, so the captions of the synthetic shape images
tokenize to real words. The families' ``build_test_model`` gives the same
models when passed that corpus (``TinyModelOptions(corpus=...)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..bge import builders
from ..bge.builders import CHINESE, CORPUS, ENGLISH, VISUALIZED_VARIANTS, rope_tables
from .shapes import caption_corpus

__all__ = ["CHINESE", "CORPUS", "ENGLISH", "VISUALIZED_VARIANTS", "build_m3", "build_visualized", "rope_tables",
           "write_wordpiece_tokenizer", "write_xlmr_tokenizer"]


def build_visualized(out: str | Path, **options: Any) -> Path:
    """:func:`crossmodal.bge.builders.build_visualized` with the caption corpus."""
    return builders.build_visualized(out, corpus=tuple(caption_corpus()), **options)


def build_m3(out: str | Path, **options: Any) -> Path:
    """:func:`crossmodal.bge.builders.build_m3` with the caption corpus."""
    return builders.build_m3(out, corpus=tuple(caption_corpus()), **options)


def write_wordpiece_tokenizer(out: Path, **options: Any) -> int:
    return builders.write_wordpiece_tokenizer(out, corpus=tuple(caption_corpus()), **options)


def write_xlmr_tokenizer(out: Path, **options: Any) -> int:
    return builders.write_xlmr_tokenizer(out, corpus=tuple(caption_corpus()), **options)
