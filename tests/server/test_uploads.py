"""Uploaded images: kept once, content-addressed, referenced without a server path, read back only from there."""

from __future__ import annotations

import hashlib

import pytest

from crossmodal.errors import ConfigError, ImageDecodeError, PathNotAllowed
from crossmodal.server import ServerSettings
from crossmodal.server.uploads import item_image_bytes, save_upload, save_url_copy

from .helpers import png_bytes


class _Collection:
    def __init__(self, root):
        self.root = root

    def resolve(self, reference):
        return None if "://" in reference else self.root / reference


def test_uploads_are_content_addressed(tmp_path):
    settings = ServerSettings(upload_dir=tmp_path / "up")
    data = png_bytes()
    ref = save_upload(settings, data)
    assert ref == "upload://" + hashlib.sha256(data).hexdigest()
    assert save_upload(settings, data) == ref and len(list((tmp_path / "up").iterdir())) == 1
    assert item_image_bytes(settings, _Collection(tmp_path), ref) == data
    save_url_copy(settings, "https://example.com/a.png", data)
    assert item_image_bytes(settings, _Collection(tmp_path), "https://example.com/a.png") == data


@pytest.mark.parametrize("ref", ["upload://../../etc/passwd", "upload://" + "g" * 64, "upload://abc",
                                 "https://example.com/never-fetched.png"])
def test_bad_or_unknown_upload_references(tmp_path, ref):
    settings = ServerSettings(upload_dir=tmp_path)
    with pytest.raises(ImageDecodeError):
        item_image_bytes(settings, _Collection(tmp_path), ref)


def test_item_paths_are_read_only_under_the_roots(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.png").write_bytes(png_bytes())
    (tmp_path / "b.png").write_bytes(png_bytes())
    settings = ServerSettings(roots=(root,))
    assert item_image_bytes(settings, _Collection(root), "a.png") == (root / "a.png").read_bytes()
    with pytest.raises(PathNotAllowed, match="--root"):
        item_image_bytes(settings, _Collection(root), "../b.png")


def test_no_upload_dir_means_no_uploads():
    with pytest.raises(ConfigError, match="--upload-dir"):
        save_upload(ServerSettings(), png_bytes())
