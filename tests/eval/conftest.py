"""Fixtures for the evaluation tests: a generated shape set written in every format."""

from __future__ import annotations

import pytest

from .formats import ShapeSet, make_shape_set


@pytest.fixture(scope="session")
def shape_set(tmp_path_factory: pytest.TempPathFactory) -> ShapeSet:
    return make_shape_set(tmp_path_factory.mktemp("shapes"))
