"""Thumbnails: upright, alpha on white, no larger than asked, and a cache that stays within its bound."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from crossmodal.errors import ImageDecodeError
from crossmodal.server.thumbnails import ThumbnailCache, render_thumbnail


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_thumbnail_is_upright_and_bounded():
    img = Image.new("RGB", (400, 200), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 200, 200))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: the viewer turns it 90 degrees clockwise
    thumb = Image.open(io.BytesIO(render_thumbnail(_encode(img, "JPEG", exif=exif), 128, 10**8)))
    assert thumb.format == "JPEG" and thumb.size == (64, 128)
    assert thumb.getpixel((32, 20))[2] > 200  # blue ends up on top once upright


def test_transparency_becomes_white():
    clear = Image.new("RGBA", (50, 50), (0, 0, 0, 0))
    thumb = Image.open(io.BytesIO(render_thumbnail(_encode(clear, "PNG"), 64, 10**8)))
    assert min(thumb.getpixel((25, 25))) > 245


def test_bad_images_have_no_thumbnail():
    with pytest.raises(ImageDecodeError):
        render_thumbnail(b"not an image", 64, 10**8)
    with pytest.raises(ImageDecodeError, match="pixel limit"):
        render_thumbnail(_encode(Image.new("RGB", (100, 100)), "PNG"), 64, 99 * 100)


def test_the_cache_keeps_the_most_recent_within_its_bound():
    cache = ThumbnailCache(max_items=2)
    cache.put(("c", "a", "h", 64), b"a")
    cache.put(("c", "b", "h", 64), b"b")
    assert cache.get(("c", "a", "h", 64)) == b"a"  # a is now the most recent
    cache.put(("c", "d", "h", 64), b"d")
    assert len(cache) == 2 and cache.get(("c", "b", "h", 64)) is None
    cache.drop("c", "a")
    assert cache.get(("c", "a", "h", 64)) is None and cache.get(("c", "d", "h", 64)) == b"d"
