"""Request and response bodies (pydantic), which also make the OpenAPI docs at ``/docs``.

Embedding inputs follow OpenAI's ``/v1/embeddings``, widened to images the way
OpenAI's chat API writes them. One **item** (one vector out) is:

* a string, or ``{"type": "text", "text": "..."}``: a text;
* ``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}``: an image
  (``image_url`` may also be the URL string itself);
* a list of parts, one ``image_url`` part and one ``text`` part, in either order: a **pair**,
  embedded as one composed vector (image weight: the model's default, or ``image_weight``).
  A list with a single part is that part.

So ``"input": ["a cat", [{"type": "image_url", ...}, {"type": "text", "text": "at night"}]]``
asks for two vectors: a text and a pair.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AddFailure",
    "AddItem",
    "AddItemsRequest",
    "AddItemsResponse",
    "CollectionInfo",
    "CollectionList",
    "CrossmodalOptions",
    "EmbeddingData",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "ErrorResponse",
    "Hit",
    "ImagePart",
    "ImageRef",
    "ImageURL",
    "ItemOut",
    "ModelCard",
    "ModelList",
    "SearchRequest",
    "SearchResponse",
    "SparseEmbedding",
    "TextPart",
    "Usage",
]

Metadata = dict[str, Any]


class ImageURL(BaseModel):
    url: str = Field(description="data:image/...;base64,..., or http(s):// (if the server fetches URLs), or file: under a root")
    detail: str | None = Field(default=None, description="accepted for OpenAI compatibility; ignored")


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ImagePart(BaseModel):
    type: Literal["image_url"]
    image_url: ImageURL | str


Part = Annotated[TextPart | ImagePart, Field(discriminator="type")]
InputItem = str | Part | list[Part] | list[int]


class CrossmodalOptions(BaseModel):
    """crossmodal's extension of an embeddings request (OpenAI clients send it through ``extra_body``)."""

    model_config = ConfigDict(extra="forbid")

    outputs: list[str] = Field(default_factory=list, description="outputs besides the dense embedding, for texts: "
                                                                 "'sparse' (token id weights) and/or 'multivector' "
                                                                 "(one vector per token), where the model gives them")


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    input: str | list[InputItem] = Field(description="one item or a list of items; see the module docs for pairs")
    model: str | None = Field(default=None, description="the served model's name (see GET /v1/models)")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, description="must equal the model's dim if given")
    user: str | None = None
    image_weight: float | None = Field(default=None, ge=0, le=1, description="image share of pair vectors")
    truncate: bool = Field(default=True, description="cut a text over the model's context length to fit (the "
                                                     "default, as the library and the CLI do); false: refuse it "
                                                     "(422 text_too_long)")
    crossmodal: CrossmodalOptions | None = Field(default=None, description="crossmodal's extensions (extra outputs)")


class SparseEmbedding(BaseModel):
    indices: list[int] = Field(description="token ids, ascending")
    values: list[float] = Field(description="their weights (> 0)")


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 of little-endian float32 bytes")
    truncated: bool = Field(default=False, description="the item's text was over the context length and was cut")
    sparse: SparseEmbedding | None = Field(default=None, description="with crossmodal.outputs ['sparse']")
    multivector: list[list[float]] | None = Field(default=None, description="with crossmodal.outputs "
                                                                            "['multivector']: one row per token")


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "crossmodal"
    dim: int
    mode: str
    runtime: str
    space: dict[str, Any]


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ImageRef(BaseModel):
    """An image given by exactly one of: a URL (data:, http(s), file:), a path under a root, or base64 bytes."""

    url: str | None = None
    path: str | None = None
    data: str | None = Field(default=None, description="base64 of the encoded image file")


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(default=None, description="a text query (with image: a pair query)")
    image: ImageRef | None = Field(default=None, description="an image query (with text: a pair query)")
    vector: list[float] | None = Field(default=None, description="a query vector in the collection's space")
    like: str | None = Field(default=None, description="more like this: the id of an item of the collection")
    top_k: int = Field(default=10, ge=1)
    modality: Literal["image", "text", "pair", "all"] | None = None
    where: dict[str, Any] | None = Field(default=None, description='metadata filter, MongoDB-style, e.g. {"album": "2024", "year": {"$gte": 2020}}')
    image_weight: float | None = Field(default=None, ge=0, le=1)
    using: Literal["dense", "keyword", "sparse", "hybrid"] = Field(
        default="dense", description="dense: by meaning (vectors); keyword: BM25 over texts, captions, file names "
                                     "and the metadata marked as text (needs text); sparse: the model's sparse "
                                     "(lexical) vectors, for a model that has them such as BGE-M3 (needs text); "
                                     "hybrid: dense, keyword and (when the model has it) sparse, fused by "
                                     "reciprocal rank fusion (k = 60)")
    rerank: Literal["multivector"] | None = Field(
        default=None, description="multivector: reorder the best candidates by MaxSim of the model's multi-vectors "
                                  "(ColBERT-style, for a model that has them such as BGE-M3; needs text)")
    hide_duplicates: bool = Field(
        default=False, description="leave out hits that a better hit duplicates: the same content, or a cosine "
                                   "similarity of at least duplicate_threshold between their vectors")
    duplicate_threshold: float | None = Field(
        default=None, gt=0, le=1, description="with hide_duplicates: the cosine similarity that makes a "
                                              "near-duplicate (default 0.95)")


class Hit(BaseModel):
    id: str
    score: float = Field(description="cosine similarity to the query (keyword: BM25; hybrid: the fused score)")
    modality: str
    reference: str | None = Field(description="image path (relative to the collection's root) or URI; a text's text")
    text: str | None = Field(default=None, description="the text of a text item, the caption of a pair")
    metadata: Metadata = Field(default_factory=dict)
    thumbnail: str | None = Field(default=None, description="URL of the item's thumbnail (images and pairs)")
    signals: dict[str, float] | None = Field(
        default=None, description="keyword, sparse, hybrid and reranked searches: each signal that found the item, "
                                  "with its score there (dense: cosine, keyword: BM25, sparse: dot product, "
                                  "multivector: MaxSim); the hit's score is the final one (fused, or MaxSim)")
    highlights: list[tuple[int, int]] | None = Field(
        default=None, description="keyword and hybrid searches: [start, end) character offsets of the matched "
                                  "words in text")


class SearchResponse(BaseModel):
    collection: str
    hits: list[Hit]


class AddItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, description="default: derived from the reference")
    text: str | None = None
    image: ImageRef | None = None
    metadata: Metadata | None = None


class AddItemsRequest(BaseModel):
    items: list[AddItem]


class ItemOut(BaseModel):
    id: str
    modality: str
    reference: str | None
    text: str | None = None
    metadata: Metadata = Field(default_factory=dict)
    content_hash: str | None = None
    thumbnail: str | None = None
    vector: list[float] | None = None


class AddFailure(BaseModel):
    index: int
    code: str
    message: str


class AddItemsResponse(BaseModel):
    collection: str
    items: list[ItemOut | None] = Field(description="the stored items in request order; null where one failed")
    count: int = Field(description="items in the collection now")
    failures: list[AddFailure] = Field(default_factory=list, description="items that could not be embedded")


class CollectionInfo(BaseModel):
    name: str
    count: int
    counts: dict[str, int] = Field(description="items per modality")
    model: str
    dim: int
    mode: str
    searchable: bool = Field(description="whether the served model shares the collection's space (text/image queries)")


class CollectionList(BaseModel):
    object: Literal["list"] = "list"
    data: list[CollectionInfo]


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str
    param: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class DuplicateItem(BaseModel):
    id: str
    modality: str
    reference: str | None = None
    text: str | None = None
    similarity: float = Field(description="cosine similarity of the item's vector to the asked item's")
    thumbnail: str | None = None


class DuplicateGroupOut(BaseModel):
    kind: Literal["exact", "near"] = Field(description="exact: every item has the same content; near: the "
                                                       "vectors are nearly the same")
    modality: str
    similarity: float = Field(description="the lowest cosine of the links that make the group (exact: 1)")
    items: list[DuplicateItem]


class DuplicatesResponse(BaseModel):
    collection: str
    id: str
    threshold: float
    group: DuplicateGroupOut | None = Field(description="the item's group (the item included); null when the item "
                                                        "has no duplicates")
