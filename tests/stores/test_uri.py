"""Store URIs -> backends: schemes, and what a missing optional client library says."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from crossmodal.cli.errors import exit_code
from crossmodal.cli.main import cli
from crossmodal.errors import StoreUnavailable
from crossmodal.server.errors import status_for
from crossmodal.store import open_store

QDRANT = ["crossmodal.stores.qdrant", "crossmodal.stores.qdrant_filters"]
# (URI, the client module to block, the crossmodal modules that import it, the extra to install)
MISSING = [
    ("postgresql://user@db.example/photos", "psycopg", ["crossmodal.stores.pgvector"], "postgres"),
    ("postgres://db.example/photos", "psycopg_pool", ["crossmodal.stores.pgvector"], "postgres"),
    ("qdrant://qdrant.example:6333", "qdrant_client", QDRANT, "qdrant"),
    ("qdrant+local://:memory:", "qdrant_client", QDRANT, "qdrant"),
]


def _block(monkeypatch: pytest.MonkeyPatch, client: str, ours: list[str]) -> None:
    """Make ``import client`` fail as it does when the package is not installed (None in sys.modules)."""
    for name in [m for m in sys.modules if m == client or m.startswith(client + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, client, None)
    for name in ours:
        monkeypatch.delitem(sys.modules, name, raising=False)


@pytest.mark.parametrize("uri, client, ours, extra", MISSING)
def test_a_missing_store_extra_is_a_store_error_naming_the_extra(monkeypatch, uri, client, ours, extra) -> None:
    _block(monkeypatch, client, ours)
    with pytest.raises(StoreUnavailable) as caught:
        open_store(uri)
    assert f"pip install 'crossmodal[{extra}]'" in str(caught.value)
    assert client in str(caught.value)
    assert status_for(caught.value) == 503  # the service is unavailable, not broken
    assert exit_code(caught.value) == 6  # the CLI's store exit code


def test_the_cli_says_which_extra_to_install(monkeypatch) -> None:
    _block(monkeypatch, "psycopg", ["crossmodal.stores.pgvector"])
    result = CliRunner().invoke(cli, ["collections", "list", "--store", "postgresql://db.example/photos"])
    assert result.exit_code == 6, result.output
    assert "pip install 'crossmodal[postgres]'" in result.output
    assert "Traceback" not in result.output


def test_every_scheme_with_an_extra_is_served() -> None:
    from crossmodal.stores.uri import EXTRAS, SCHEMES

    assert set(EXTRAS) <= set(SCHEMES)
