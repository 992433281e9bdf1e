"""Distributed ingest on Ray Data (``crossmodal[ray]``): see :mod:`~crossmodal.distributed.ray_ingest`."""

from .ray_ingest import SERVER_SCHEMES, check_server_store, ray_ingest

__all__ = ["SERVER_SCHEMES", "check_server_store", "ray_ingest"]
