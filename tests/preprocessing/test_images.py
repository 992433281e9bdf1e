"""Image preprocessing equals transformers' PIL image processors, pixel for pixel.

The reference is the model's own Hugging Face processor (the PIL backend),
fed the decoded image after EXIF orientation (which transformers does not
apply itself). Every real photo in ../shared/data/images and generated edge
cases (1x1, extreme aspect ratios, huge, every PIL mode, EXIF orientations,
animations) must give the same float32 array within 1e-6.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from crossmodal.errors import ImageDecodeError, ImageTooLarge, InputError
from crossmodal.models.spec import ImagePreprocess
from crossmodal.preprocessing.images import ImageTransform, load_image, to_rgb

from ..conftest import shared_images

pytest.importorskip("transformers")
from transformers.models.chinese_clip.image_processing_pil_chinese_clip import (  # noqa: E402
    ChineseCLIPImageProcessorPil,
)
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil  # noqa: E402
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil  # noqa: E402

PROCESSORS = {
    # openai/clip-*: shortest side to 224, center crop 224, bicubic, OpenAI mean/std
    "clip-224": CLIPImageProcessorPil(),
    # google/siglip-*: squash to 224x224, bicubic, mean/std 0.5
    "siglip-224": SiglipImageProcessorPil(),
    # OFA-Sys/chinese-clip-*: squash to 224x224 (no crop)
    "chinese-clip-224": ChineseCLIPImageProcessorPil(size={"height": 224, "width": 224}, do_center_crop=False),
    # odd sizes exercise the integer arithmetic of resize and crop offsets
    "clip-37-bilinear": CLIPImageProcessorPil(
        size={"shortest_edge": 37}, crop_size={"height": 31, "width": 33}, resample=2
    ),
}


def reference(name: str, image: Image.Image) -> np.ndarray:
    return PROCESSORS[name](images=image, return_tensors="np")["pixel_values"][0]


def ours(name: str, image: Image.Image) -> np.ndarray:
    cfg = ImagePreprocess.from_processor_config(PROCESSORS[name].to_dict())
    return ImageTransform(cfg)(to_rgb(image))


def oriented(path: Path) -> Image.Image:
    """What a user hands transformers: the decoded file, EXIF orientation applied, mode untouched."""
    img = Image.open(path)
    img.load()
    return ImageOps.exif_transpose(img)


@pytest.mark.parametrize("name", list(PROCESSORS))
def test_every_shared_photo_matches_reference(name: str, images_dir: Path) -> None:
    paths = shared_images()
    assert len(paths) >= 50
    for path in paths:
        expected = reference(name, oriented(path))
        got = ImageTransform(ImagePreprocess.from_processor_config(PROCESSORS[name].to_dict()))(load_image(path))
        assert got.dtype == np.float32 and got.shape == expected.shape, path.name
        assert np.abs(got - expected).max() <= 1e-6, path.name


def _rgba(w: int, h: int) -> Image.Image:
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    return Image.fromarray(arr, "RGBA")


def _palette_with_transparency() -> Image.Image:
    img = Image.fromarray(np.random.default_rng(2).integers(0, 256, (40, 60, 3), dtype=np.uint8), "RGB")
    pal = img.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.info["transparency"] = 3
    return pal


EDGE_CASES = {
    "1x1": lambda: Image.new("RGB", (1, 1), (200, 10, 30)),
    "1x300": lambda: Image.fromarray(np.random.default_rng(3).integers(0, 256, (300, 1, 3), dtype=np.uint8)),
    "300x1": lambda: Image.fromarray(np.random.default_rng(4).integers(0, 256, (1, 300, 3), dtype=np.uint8)),
    "tall-odd": lambda: Image.fromarray(np.random.default_rng(5).integers(0, 256, (333, 101, 3), dtype=np.uint8)),
    "huge-6000x4000": lambda: Image.radial_gradient("L").resize((6000, 4000)).convert("RGB"),
    "grayscale-L": lambda: Image.linear_gradient("L").resize((90, 70)),
    "LA": lambda: _rgba(50, 40).convert("LA"),
    "RGBA": lambda: _rgba(64, 48),
    "P": lambda: _palette_with_transparency().copy().convert("RGB").convert("P"),
    "P-transparency": _palette_with_transparency,
    "CMYK": lambda: Image.fromarray(np.random.default_rng(6).integers(0, 256, (30, 50, 3), dtype=np.uint8)).convert("CMYK"),
    "1-bit": lambda: Image.linear_gradient("L").resize((45, 45)).convert("1"),
}


@pytest.mark.parametrize("name", list(PROCESSORS))
@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_edge_cases_match_reference(name: str, case: str) -> None:
    image = EDGE_CASES[case]()
    assert np.abs(ours(name, image) - reference(name, image)).max() <= 1e-6


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_16_bit_images_keep_their_range_and_match_reference_on_the_8_bit_image() -> None:
    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65520
    data = _png_bytes(Image.fromarray(ramp))
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    decoded = load_image(data)
    arr = np.asarray(decoded)[..., 0]
    # Scaled, not clipped: the ramp spans the full 8-bit range and stays monotonic.
    assert arr.min() == 0 and arr.max() == 255
    assert (np.diff(arr.astype(int), axis=1) >= 0).all()
    np.testing.assert_array_equal(arr, np.rint(ramp / 257).astype(np.uint8))
    eight_bit = Image.fromarray(np.rint(ramp / 257).astype(np.uint8), "L")
    for name in PROCESSORS:
        cfg = ImagePreprocess.from_processor_config(PROCESSORS[name].to_dict())
        assert np.abs(ImageTransform(cfg)(decoded) - reference(name, eight_bit)).max() <= 1e-6
    # What the naive path does: Pillow clips 16-bit values at 255, so almost the whole image turns white.
    naive = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))[..., 0]
    assert (naive == 255).mean() > 0.9


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation: int) -> None:
    base = Image.fromarray(np.random.default_rng(7).integers(0, 256, (40, 80, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    base.save(buf, format="JPEG", exif=exif, quality=95)
    data = buf.getvalue()
    decoded = load_image(data)
    expected_size = (40, 80) if orientation >= 5 else (80, 40)
    assert decoded.size == expected_size
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    np.testing.assert_array_equal(np.asarray(decoded), np.asarray(upright.convert("RGB")))
    for name in PROCESSORS:
        assert np.abs(ours(name, decoded) - reference(name, upright)).max() <= 1e-6


def test_animated_gif_uses_the_first_frame(images_dir: Path) -> None:
    path = images_dir / "formats" / "bee_animated.gif"
    with Image.open(path) as gif:
        assert gif.n_frames > 1
        gif.seek(0)
        first = gif.convert("RGB")
        gif.seek(1)
        second = gif.convert("RGB")
    assert not np.array_equal(np.asarray(first), np.asarray(second))
    np.testing.assert_array_equal(np.asarray(load_image(path)), np.asarray(first))


def test_inputs_of_every_kind_decode_identically(images_dir: Path) -> None:
    path = images_dir / "formats" / "cat.jpg"
    from_path = np.asarray(load_image(path))
    np.testing.assert_array_equal(from_path, np.asarray(load_image(str(path))))
    np.testing.assert_array_equal(from_path, np.asarray(load_image(path.read_bytes())))
    np.testing.assert_array_equal(from_path, np.asarray(load_image(Image.open(path))))
    np.testing.assert_array_equal(from_path, np.asarray(load_image(from_path.copy())))


def test_corrupt_truncated_and_missing_files_name_the_input(tmp_path: Path, images_dir: Path) -> None:
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"this is not an image")
    with pytest.raises(ImageDecodeError, match="junk.jpg"):
        load_image(junk)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes((images_dir / "formats" / "cat.jpg").read_bytes()[:5000])
    with pytest.raises(ImageDecodeError, match="truncated.jpg"):
        load_image(truncated)
    with pytest.raises(ImageDecodeError, match="missing.png"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageDecodeError, match="empty image bytes"):
        load_image(b"")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bomb_is_refused_before_decoding() -> None:
    # A 20000x10000 PNG of one colour compresses to a few hundred KB but would need 600 MB decoded.
    bomb = _png_bytes(Image.new("L", (20_000, 10_000)))
    assert len(bomb) < 1_000_000
    with pytest.raises(ImageTooLarge, match="<.* bytes> is too large to decode safely"):
        load_image(bomb)
    # The default limit is Pillow's hard limit, about 179M pixels: a 12000x12000 header is refused by ours.
    with pytest.raises(ImageTooLarge, match="144,000,000 pixels, over the limit of 100,000,000"):
        load_image(_png_bytes(Image.new("1", (12_000, 12_000))), max_pixels=100_000_000)
    # The limit is the caller's to raise or lower.
    with pytest.raises(ImageTooLarge):
        load_image(_png_bytes(Image.new("L", (100, 100))), max_pixels=5_000)
    assert load_image(_png_bytes(Image.new("L", (100, 100))), max_pixels=10_000).size == (100, 100)


def test_unsupported_array_inputs_are_refused() -> None:
    with pytest.raises(InputError, match="uint8"):
        load_image(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(InputError, match="channels last"):
        load_image(np.zeros((3, 4, 4, 2), dtype=np.uint8))
    with pytest.raises(InputError, match="unsupported image input"):
        load_image(12345)  # type: ignore[arg-type]
