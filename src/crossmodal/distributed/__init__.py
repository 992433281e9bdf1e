"""Distributed ingest on Ray Data (``crossmodal[ray]``): see :mod:`~crossmodal.distributed.ray_ingest`."""

from .ray_ingest import check_server_store, ray_ingest

__all__ = ["check_server_store", "ray_ingest"]
