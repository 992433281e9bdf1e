"""The reference harness says why it cannot run instead of failing obscurely."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..reference.bge_env import ReferenceUnavailable, prepare


def test_missing_reference_files_are_reported_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ReferenceUnavailable) as info:
        prepare(tmp_path)
    message = str(info.value)
    assert "flagembedding==1.2.11" in message and "timm==" in message
    assert "bge_env.py fetch" in message

