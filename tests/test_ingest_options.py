"""Ingest options: one frozen object, checked when built; keyword overrides name only known options."""

from __future__ import annotations

from pathlib import Path

import pytest

import crossmodal
from crossmodal.errors import ConfigError
from crossmodal.ingest import IngestOptions, ingest
from crossmodal.testing.fake import fake_model


def test_options_are_checked_when_built() -> None:
    opts = IngestOptions(include=["*.jpg"], captions="caps.tsv")
    assert opts.include == ("*.jpg",) and opts.captions == Path("caps.tsv")
    with pytest.raises(AttributeError):
        opts.prune = True  # type: ignore[misc]
    for bad in ({"max_file_size": 0}, {"batch_size": 0}, {"workers": -1}, {"image_weight": 1.5}, {"include": "*.jpg"}):
        with pytest.raises(ConfigError):
            IngestOptions(**bad)  # type: ignore[arg-type]


def test_keywords_override_the_options_given_and_an_unknown_one_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one\ntwo\n")
    col = crossmodal.open_store("memory://").collection("c", model=fake_model(dim=8))
    report = ingest(col, [tmp_path], IngestOptions(lines=False), lines=True)
    assert report.added == 2  # one item per line: the keyword won
    with pytest.raises(ConfigError, match="unknown ingest option captons"):
        ingest(col, [tmp_path], captons="x.tsv")
