"""Store URIs -> backends: schemes, and what a missing optional client library says."""

from __future__ import annotations

import importlib
import re
import sys

import pytest
from click.testing import CliRunner

from crossmodal.cli.errors import exit_code
from crossmodal.cli.main import cli
from crossmodal.errors import ConfigError, StoreUnavailable
from crossmodal.server.errors import status_for
from crossmodal.store import open_store

# (URI, the client module to block, the crossmodal backend package that imports it, the extra to install)
MISSING = [
    ("postgresql://user@db.example/photos", "psycopg", "crossmodal.stores.pgvector", "postgres"),
    ("postgres://db.example/photos", "psycopg_pool", "crossmodal.stores.pgvector", "postgres"),
    ("qdrant://qdrant.example:6333", "qdrant_client", "crossmodal.stores.qdrant", "qdrant"),
    ("qdrant+local://:memory:", "qdrant_client", "crossmodal.stores.qdrant", "qdrant"),
]


def _modules(package: str) -> list[str]:
    return [m for m in sys.modules if m == package or m.startswith(package + ".")]


def _block(monkeypatch: pytest.MonkeyPatch, client: str, ours: str) -> None:
    """Make ``import client`` fail as it does when the package is not installed (None in sys.modules), and make
    our backend package ``ours`` import again."""
    for name in _modules(client):
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, client, None)
    for name in _modules(ours):
        monkeypatch.delitem(sys.modules, name)


@pytest.mark.parametrize("uri, client, ours, extra", MISSING)
def test_a_missing_store_extra_is_a_store_error_naming_the_extra(monkeypatch, uri, client, ours, extra) -> None:
    _block(monkeypatch, client, ours)
    with pytest.raises(StoreUnavailable) as caught:
        open_store(uri)
    assert f"pip install 'crossmodal[{extra}]'" in str(caught.value)
    assert client in str(caught.value)
    assert status_for(caught.value) == 503  # the service is unavailable, not broken
    assert exit_code(caught.value) == 6  # the CLI's store exit code


@pytest.mark.parametrize("uri, client, ours, extra", MISSING)
def test_the_backend_package_itself_names_the_missing_extra(monkeypatch, uri, client, ours, extra) -> None:
    _block(monkeypatch, client, ours)
    with pytest.raises(StoreUnavailable, match=re.escape(f"pip install 'crossmodal[{extra}]'")):
        importlib.import_module(ours)


def test_the_cli_says_which_extra_to_install(monkeypatch) -> None:
    _block(monkeypatch, "psycopg", "crossmodal.stores.pgvector")
    result = CliRunner().invoke(cli, ["collections", "list", "--store", "postgresql://db.example/photos"])
    assert result.exit_code == 6, result.output
    assert "pip install 'crossmodal[postgres]'" in result.output
    assert "Traceback" not in result.output


def test_every_scheme_is_served_by_a_store_class_that_states_its_capabilities() -> None:
    from crossmodal.stores.base import StoreBase
    from crossmodal.stores.uri import SCHEMES, backend_class

    for scheme in SCHEMES:
        cls = backend_class(f"{scheme}://somewhere")
        assert issubclass(cls, StoreBase), scheme
        assert isinstance(cls.shared, bool) and cls.kind and cls.kind != StoreBase.kind, scheme
    assert backend_class("/some/dir") is backend_class("file:///some/dir")


def test_an_unknown_scheme_is_a_config_error_naming_the_known_ones() -> None:
    from crossmodal.stores.uri import backend_class

    with pytest.raises(ConfigError, match="unknown store scheme 'nosuch'.*memory"):
        backend_class("nosuch://x")


def test_the_library_opens_only_the_store_it_is_given_and_the_public_api_fills_in_the_default(monkeypatch, tmp_path):
    import crossmodal
    from crossmodal.errors import ConfigError

    monkeypatch.setenv("CROSSMODAL_STORE", str(tmp_path / "from-env"))
    with pytest.raises(ConfigError, match="crossmodal.open_store"):
        open_store(None)  # library code does not read the environment
    assert not (tmp_path / "from-env").exists()
    with crossmodal.open_store() as st:  # the public API's edge reads the settings
        assert st.uri == str(tmp_path / "from-env")
