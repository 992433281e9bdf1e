"""crossmodal: text, images and image+text pairs in one vector space.

>>> import crossmodal
>>> model = crossmodal.load_model("openai/clip-vit-base-patch32")
>>> vectors = model.embed_texts(["a dog", "一条龙"])   # float32 (2, 512), unit norm
"""

from .collection import AddResult, Collection
from .defaults import open_store
from .embedder import EmbeddingBatch, Embeddings, Failure, Model, l2_normalize
from .errors import (
    CollectionExists,
    CollectionNotFound,
    ConfigError,
    CrossmodalError,
    DimensionMismatch,
    EmptyText,
    ExportError,
    ImageDecodeError,
    ImageTooLarge,
    InputError,
    ItemNotFound,
    ModelError,
    ModelLoadError,
    ModelNotFound,
    ModelUnavailableOffline,
    RuntimeUnavailable,
    SpaceMismatch,
    StoreCorrupt,
    StoreError,
    StoreUnavailable,
    TextTooLong,
)
from .inputs import Input
from .loader import load_model
from .models.spec import Fusion, ImagePreprocess, ModelSpec, TextPreprocess
from .space import Space
from .store import Store
from .stores.base import CheckReport, CollectionInfo, Hit, Record

__version__ = "0.1.0"

__all__ = [
    "AddResult",
    "CheckReport",
    "Collection",
    "CollectionExists",
    "CollectionInfo",
    "CollectionNotFound",
    "ConfigError",
    "CrossmodalError",
    "DimensionMismatch",
    "EmbeddingBatch",
    "Embeddings",
    "EmptyText",
    "ExportError",
    "Failure",
    "Fusion",
    "Hit",
    "ImageDecodeError",
    "ImagePreprocess",
    "ImageTooLarge",
    "Input",
    "InputError",
    "ItemNotFound",
    "Model",
    "ModelError",
    "ModelLoadError",
    "ModelNotFound",
    "ModelSpec",
    "ModelUnavailableOffline",
    "Record",
    "RuntimeUnavailable",
    "Space",
    "SpaceMismatch",
    "Store",
    "StoreCorrupt",
    "StoreError",
    "StoreUnavailable",
    "TextPreprocess",
    "TextTooLong",
    "__version__",
    "l2_normalize",
    "load_model",
    "open_store",
]
