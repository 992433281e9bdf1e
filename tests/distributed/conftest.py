"""A local Ray cluster of 2 CPUs, started once per test session (about ten seconds), and the test PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..stores.servers import stop_servers


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="session", autouse=True)
def _servers() -> Iterator[None]:
    yield
    stop_servers()
