"""Visualized-BGE's image preprocessing equals the reference's eval transform, bit for bit.

The reference transform (``Resize(224, BICUBIC)``, ``CenterCrop(224)``,
``convert('RGB')``, ``ToTensor``, ``Normalize``) runs on ``Image.open`` of every
shared photo and of synthesized RGBA, palette, grayscale, LA, CMYK and 16-bit
files and odd sizes; crossmodal's numpy/PIL implementation must give the same
float32 tensors exactly. The two differences from the CLIP processors are
fields of the image-preprocess spec (``crop_rounding``, ``rgb``) that the shared
``ImageTransform`` applies; both are shown to matter (floor vs round-half-even
crop offsets; RGB conversion before vs after the resize), and crossmodal's
decoding differences (EXIF orientation, 16-bit scaling) are shown.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crossmodal.bge.images import visualized_image
from crossmodal.errors import ConfigError, ImageDecodeError
from crossmodal.models.spec import ImagePreprocess
from crossmodal.preprocessing.images import ImageTransform, _resize_shape, crop_offsets

RULE = visualized_image()


def preprocess(img: Image.Image, spec: ImagePreprocess) -> np.ndarray:
    return ImageTransform(spec)(img)


def decode_image(path: Path) -> Image.Image:
    """crossmodal's decoding (EXIF orientation, 16-bit scaling), in the image's own mode."""
    return ImageTransform(RULE).load(path)


def _reference_decoding(path: Path) -> Image.Image:
    img = Image.open(path)  # what the reference does: no orientation, no scaling
    img.load()
    return img


def _offsets(path: Path, rounding: str) -> tuple[int, int]:
    width, height = Image.open(path).size
    return crop_offsets(*_resize_shape(height, width, RULE), (224, 224), rounding)


def test_preprocessing_equals_the_reference_transform_exactly(transform_images, transform_reference) -> None:
    from ..conftest import shared_images

    for photo in shared_images():  # so crossmodal's EXIF rule changes none of them
        assert Image.open(photo).getexif().get(0x0112, 1) == 1, photo
    for i, path in enumerate(transform_images):
        assert transform_reference.error(f"image.{i}") is None, (path, transform_reference.meta[f"image.{i}"])
        ours = preprocess(_reference_decoding(path), RULE)
        ref = transform_reference[f"image.{i}"]
        assert ours.dtype == ref.dtype == np.float32 and ours.shape == ref.shape == (3, 224, 224)
        assert np.array_equal(ours, ref), (path.name, float(np.abs(ours - ref).max()))


def test_the_synthesized_images_cover_the_modes_and_sizes(synthetic_images) -> None:
    modes = {Image.open(p).mode for p in synthetic_images}
    assert {"RGBA", "P", "L", "LA", "CMYK", "I;16"} <= modes
    offsets_differ = [p for p in synthetic_images if _offsets(p, "floor") != _offsets(p, "half_even")]
    assert len(offsets_differ) >= 3


def test_floor_and_half_even_crops_differ_where_the_excess_is_3_mod_4() -> None:
    c = (224, 224)
    assert crop_offsets(224, 227, c, "half_even") == (0, 2)  # round(1.5) = 2
    assert crop_offsets(224, 227, c, "floor") == (0, 1)
    assert crop_offsets(224, 225, c, "half_even") == crop_offsets(224, 225, c, "floor") == (0, 0)  # round(0.5) = 0
    assert crop_offsets(229, 224, c, "half_even") == crop_offsets(229, 224, c, "floor") == (2, 0)  # round(2.5) = 2
    assert crop_offsets(231, 224, c, "half_even") == (4, 0) and crop_offsets(231, 224, c, "floor") == (3, 0)


def test_the_crop_rule_changes_the_pixels(synthetic_images) -> None:
    path = next(p for p in synthetic_images if p.name == "odd_227x224.png")
    img = _reference_decoding(path)
    floor = preprocess(img, replace(RULE, crop_rounding="floor"))
    half_even = preprocess(img, RULE)
    assert np.array_equal(floor[:, :, 1:], half_even[:, :, :-1])  # one pixel to the side
    assert not np.array_equal(floor, half_even)


@pytest.mark.parametrize("name", ["palette.png", "rgba.png"])
def test_converting_before_the_resize_differs_for_palette_and_rgba(synthetic_images, transform_images,
                                                                   transform_reference, name: str) -> None:
    """Pillow resizes palette images with NEAREST and RGBA premultiplied; converting first does neither."""
    path = next(p for p in synthetic_images if p.name == name)
    ref = transform_reference[f"image.{transform_images.index(path)}"]
    before = preprocess(_reference_decoding(path), replace(RULE, rgb="before_resize"))
    assert np.abs(before - ref).max() > 0.1


def test_transparent_pixels_come_out_black_not_white(synthetic_images) -> None:
    path = next(p for p in synthetic_images if p.name == "rgba.png")  # its top third is fully transparent
    out = preprocess(_reference_decoding(path), RULE)
    black = (np.zeros(3, np.float32) - np.float32(RULE.mean)) / np.float32(RULE.std)
    np.testing.assert_array_equal(out[:, 0, 0], black)


def test_crossmodal_applies_exif_orientation_where_the_reference_does_not(synthetic_images, transform_images,
                                                                         transform_reference) -> None:
    path = next(p for p in synthetic_images if p.name == "rotated_exif6.jpg")
    ref = transform_reference[f"image.{transform_images.index(path)}"]
    assert np.array_equal(preprocess(_reference_decoding(path), RULE), ref)
    rotated = preprocess(decode_image(path), RULE)  # crossmodal's default: turned upright
    assert np.abs(rotated - ref).max() > 0.5


def test_crossmodal_scales_16_bit_images_where_the_reference_clips_them(synthetic_images, transform_images,
                                                                        transform_reference) -> None:
    path = next(p for p in synthetic_images if p.name == "gray16.png")
    ref = transform_reference[f"image.{transform_images.index(path)}"]
    white = (np.float32(1.0) - np.float32(RULE.mean[0])) / np.float32(RULE.std[0])
    assert np.mean(ref[0] == white) > 0.9  # Pillow's conversion clips 16-bit values at 255: mostly white
    ours = preprocess(decode_image(path), RULE)
    assert np.mean(ours[0] == white) < 0.05
    assert np.array_equal(preprocess(_reference_decoding(path), RULE), ref)


def test_decode_errors_name_the_input(tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(ImageDecodeError, match="broken.png"):
        decode_image(bad)
    with pytest.raises(ImageDecodeError, match="not found"):
        decode_image(tmp_path / "missing.jpg")


def test_rule_fields_are_validated() -> None:
    with pytest.raises(ConfigError, match="crop_rounding"):
        replace(RULE, crop_rounding="ceil")
    with pytest.raises(ConfigError, match="rgb"):
        replace(RULE, rgb="never")
