"""What can be embedded: a text, an image, or an image+text pair, as one typed :class:`Input`.

Every entry point (the collection, ingest, the CLI, the service's batcher
and routes, Ray's model actors) describes what it embeds as a list of
``Input`` values and hands the list to :func:`crossmodal.dispatch.embed_inputs`,
the one place that groups a mixed list by modality and routes each group
to the model.

>>> Input.of(text="a cat"), Input.of(image="cat.jpg"), Input.of(image="cat.jpg", text="at night")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .errors import InputError

__all__ = ["MODALITIES", "WITH_IMAGE", "Input", "Modality", "query_kind"]

Modality = Literal["text", "image", "pair"]
MODALITIES: tuple[Modality, ...] = ("text", "image", "pair")
#: the kinds of input that hold an image (read, hashed and decoded from a file, bytes or a URL)
WITH_IMAGE: frozenset[str] = frozenset({"image", "pair"})


@dataclass(frozen=True)
class Input:
    """One thing to embed. ``image`` is anything the model reads (a path, bytes, a PIL image, a uint8 array).

    ``image_weight``: a pair's image share (None: the model's fusion weight). ``pixels``: the image's decoded
    size when the caller knows it from the header (what decoding it costs; the service budgets by it).
    """

    kind: Modality
    text: str | None = None
    image: Any = None
    image_weight: float | None = None
    pixels: int = 0

    def __post_init__(self) -> None:
        if self.kind not in MODALITIES:
            raise InputError(f"an input's kind must be one of {', '.join(MODALITIES)}, got {self.kind!r}")
        if self.kind != "image" and self.text is None:
            raise InputError(f"a {self.kind} input needs a text")
        if self.kind in WITH_IMAGE and self.image is None:
            raise InputError(f"a {self.kind} input needs an image")

    @classmethod
    def of(cls, text: str | None = None, image: Any = None, image_weight: float | None = None,
           pixels: int = 0) -> Input:
        """A text, an image, or both (a pair), by what is given."""
        if text is not None and image is not None:
            return cls("pair", text, image, image_weight, pixels)
        if image is not None:
            return cls("image", image=image, pixels=pixels)
        if text is not None:
            return cls("text", text=text)
        raise InputError("an item needs a text, an image, or both")

    @property
    def label(self) -> str:
        """``text:...``, ``image:...`` or ``pair:IMAGE|text`` (how the CLI names an input)."""
        if self.kind == "text":
            return f"text:{self.text}"
        if self.kind == "image":
            return f"image:{self.image}"
        return f"pair:{self.image}|{self.text}"


def query_kind(*, text: Any = None, image: Any = None, pair: Any = None, vector: Any = None,
               like: Any = None) -> str | None:
    """Which one query a search was given: ``"input"`` (a text, an image, a text with an image, or a pair),
    ``"vector"`` or ``"like"``; None when it is not exactly one (each edge words that error for its users)."""
    inputs = [v is not None for v in (text, image)]
    kinds = [k for k, v in (("input", any(inputs) or None), ("pair", pair), ("vector", vector), ("like", like))
             if v is not None]
    if len(kinds) != 1:
        return None
    return "input" if kinds[0] == "pair" else kinds[0]
