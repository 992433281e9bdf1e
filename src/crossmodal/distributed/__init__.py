"""Distributed ingest on Ray Data (``crossmodal[ray]``): see :mod:`~crossmodal.distributed.ray_ingest`."""

from .ray_ingest import RayOptions, check_server_store, ray_ingest

__all__ = ["RayOptions", "check_server_store", "ray_ingest"]
