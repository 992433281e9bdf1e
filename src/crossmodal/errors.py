"""The one exception tree of crossmodal.

Every error the library raises on purpose derives from :class:`CrossmodalError`.
Third-party errors are mapped where they enter (``raise X(...) from exc``), so
callers never need to catch ``PIL`` or ``onnxruntime`` or ``sqlite3`` errors.
The CLI turns these into exit codes, and the server into HTTP statuses, each in
exactly one place (``cli/errors.py`` and ``server/errors.py``).

::

    CrossmodalError                      (code)
    ├── ConfigError                      bad option or setting            "config"
    │   └── UnsupportedInput             a modality or output the model lacks "unsupported_input"
    ├── ModelError
    │   ├── ModelNotFound                unknown name, missing directory  "model_not_found"
    │   ├── ModelLoadError               files missing / unreadable       "model_load"
    │   ├── ModelUnavailableOffline      not cached and hub unreachable   "model_offline"
    │   ├── RuntimeUnavailable           optional extra not installed     "runtime_unavailable"
    │   └── ExportError                  export did not match its source  "export"
    ├── InputError                       one input cannot be embedded     "invalid_input"
    │   ├── ImageDecodeError             corrupt, truncated, not an image "image_decode"
    │   ├── ImageTooLarge                decompression-bomb guard         "image_too_large"
    │   ├── EmptyText                    "" or whitespace only            "empty_text"
    │   └── TextTooLong                  over context length, truncate=False "text_too_long"
    ├── SpaceMismatch                    vectors/models from another space "space_mismatch"
    │   └── DimensionMismatch            a vector of the wrong dimension  "dimension_mismatch"
    ├── StoreError
    │   ├── StoreUnavailable             cannot reach / open the store    "store_unavailable"
    │   ├── StoreCorrupt                 integrity check failed           "store_corrupt"
    │   ├── CollectionNotFound                                            "collection_not_found"
    │   ├── CollectionExists                                              "collection_exists"
    │   └── ItemNotFound                                                  "item_not_found"
    ├── AccessDenied                     refused by policy (the server)   "access_denied"
    │   ├── Unauthorized                 missing or wrong credentials     "unauthorized"
    │   ├── PathNotAllowed               a path outside the allowed roots "path_not_allowed"
    │   └── FetchNotAllowed              URL fetching off / URL refused   "fetch_not_allowed"
    └── LimitExceeded                    over a configured size or count  "limit_exceeded"

    InputError also has FetchError: an image URL could not be fetched    "fetch_failed"

Each class carries a stable ``code`` string, used by the JSON errors of the CLI
and the server.
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "CollectionExists",
    "CollectionNotFound",
    "ConfigError",
    "CrossmodalError",
    "DimensionMismatch",
    "EmptyText",
    "ExportError",
    "FetchError",
    "FetchNotAllowed",
    "ImageDecodeError",
    "ImageTooLarge",
    "InputError",
    "ItemNotFound",
    "LimitExceeded",
    "ModelError",
    "ModelLoadError",
    "ModelNotFound",
    "ModelUnavailableOffline",
    "PathNotAllowed",
    "RuntimeUnavailable",
    "SpaceMismatch",
    "StoreCorrupt",
    "StoreError",
    "StoreUnavailable",
    "TextTooLong",
    "Unauthorized",
    "UnsupportedInput",
]


class CrossmodalError(Exception):
    """Base of every error crossmodal raises on purpose."""

    code = "error"


class ConfigError(CrossmodalError, ValueError):
    """An option, setting or argument is invalid."""

    code = "config"


class UnsupportedInput(ConfigError):
    """The model has no tower for this kind of input or output (images for a text-only model)."""

    code = "unsupported_input"


class ModelError(CrossmodalError):
    """A model cannot be found, fetched, loaded or exported."""

    code = "model"


class ModelNotFound(ModelError, LookupError):
    code = "model_not_found"


class ModelLoadError(ModelError):
    code = "model_load"


class ModelUnavailableOffline(ModelError):
    """A model is not in the cache and cannot be fetched. ``model``: the name asked for; ``reason``: why not."""

    code = "model_offline"

    def __init__(self, message: str, *, model: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.model = model
        self.reason = reason


class RuntimeUnavailable(ModelError, ImportError):
    code = "runtime_unavailable"


class ExportError(ModelError):
    code = "export"


class InputError(CrossmodalError, ValueError):
    """One input cannot be embedded. ``input`` names it, ``index`` is its position."""

    code = "invalid_input"

    def __init__(self, message: str, *, input: str | None = None, index: int | None = None) -> None:  # noqa: A002
        super().__init__(message)
        self.input = input
        self.index = index

    def at(self, index: int) -> InputError:
        """Return this error with the input's batch position attached."""
        if self.index is None:
            self.index = index
            self.args = (f"input #{index}: {self.args[0]}",)
        return self


class ImageDecodeError(InputError):
    code = "image_decode"


class ImageTooLarge(InputError):
    code = "image_too_large"


class EmptyText(InputError):
    code = "empty_text"


class TextTooLong(InputError):
    code = "text_too_long"


class FetchError(InputError):
    """An image URL could not be fetched (timeout, HTTP error, connection refused)."""

    code = "fetch_failed"


class SpaceMismatch(CrossmodalError, ValueError):
    """Vectors or a model from one embedding space met a collection of another."""

    code = "space_mismatch"


class DimensionMismatch(SpaceMismatch):
    code = "dimension_mismatch"


class StoreError(CrossmodalError):
    code = "store"


class StoreUnavailable(StoreError):
    code = "store_unavailable"


class StoreCorrupt(StoreError):
    code = "store_corrupt"


class CollectionNotFound(StoreError, LookupError):
    code = "collection_not_found"


class CollectionExists(StoreError):
    code = "collection_exists"


class ItemNotFound(StoreError, LookupError):
    code = "item_not_found"


class AccessDenied(CrossmodalError, PermissionError):
    """A request was refused by policy (credentials, allowed roots, URL rules)."""

    code = "access_denied"


class Unauthorized(AccessDenied):
    code = "unauthorized"


class PathNotAllowed(AccessDenied):
    """A path outside every allowed root (after resolving ``..`` and symlinks)."""

    code = "path_not_allowed"


class FetchNotAllowed(AccessDenied):
    """Fetching a URL is off, or the URL's scheme or address is refused."""

    code = "fetch_not_allowed"


class LimitExceeded(CrossmodalError, ValueError):
    """A request is over a configured limit (body size, items per request, bytes per image)."""

    code = "limit_exceeded"
