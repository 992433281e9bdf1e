"""The HTTP service: ``create_app(ServerSettings(...))`` -> an ASGI app; ``crossmodal serve`` runs it.

See docs/server.md for the endpoints, the input shapes (pairs included), the
limits and the security rules.
"""

from .app import create_app
from .settings import BatchingSettings, FetchSettings, Limits, ServerSettings, read_tokens

__all__ = ["BatchingSettings", "FetchSettings", "Limits", "ServerSettings", "create_app", "read_tokens"]
