"""Image decoding, augmentation and resizing."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from plankton_store.imageops import (
    ImageDecodeError,
    augment,
    decode_gray,
    parse_size,
    prepare_image,
    resize,
)


def encode(im: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


GRAY = Image.fromarray(np.tile(np.arange(0, 250, 10, dtype=np.uint8), (12, 1)))  # 12 x 25
NOISE = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50), dtype=np.uint8))


@pytest.mark.parametrize("mode", ["L", "RGB", "P", "1", "RGBA", "LA", "I;16"])
@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_any_mode_decodes_to_8_bit_gray(mode, fmt):
    if mode == "I;16":
        im = Image.fromarray(np.asarray(GRAY).astype(np.uint16) * 257)
    else:
        im = GRAY.convert(mode)
    out = decode_gray(encode(im, fmt))
    assert out.mode == "L" and out.size == GRAY.size
    if mode in ("L", "RGB", "I;16", "LA", "RGBA"):
        np.testing.assert_array_equal(np.asarray(out), np.asarray(GRAY))


def test_transparent_pixels_become_white():
    im = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert (np.asarray(decode_gray(encode(im, "PNG"))) == 255).all()


def test_colour_jpeg_equals_pillow_convert():
    rgb = Image.merge("RGB", [GRAY, GRAY.transpose(Image.Transpose.FLIP_LEFT_RIGHT), GRAY])
    data = encode(rgb, "JPEG")
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
    np.testing.assert_array_equal(np.asarray(decode_gray(data)), expected)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file (0 bytes)"),
        (b"not an image", "not a readable image (unknown format)"),
        (encode(GRAY, "JPEG")[:60], "corrupt or truncated image"),
        (encode(NOISE, "PNG")[:1000], "corrupt or truncated image"),
    ],
)
def test_unusable_bytes_raise_with_reason(data, reason):
    with pytest.raises(ImageDecodeError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        decode_gray(data)


def test_decompression_bomb_is_rejected(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageDecodeError, match="decompression-bomb guard"):
        decode_gray(encode(Image.new("L", (15, 10)), "PNG"))  # 150 px: warning range
    with pytest.raises(ImageDecodeError, match="decompression-bomb guard"):
        decode_gray(encode(Image.new("L", (30, 10)), "PNG"))  # 300 px: error range


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        ("none", lambda a: a),
        ("flip_lr", np.fliplr),
        ("flip_tb", np.flipud),
        ("rot90", np.rot90),
    ],
)
def test_geometric_augmentations(operation, expected):
    np.testing.assert_array_equal(np.asarray(augment(GRAY, operation)), expected(np.asarray(GRAY)))


@pytest.mark.parametrize("operation", ["blur", "smooth", "detail", "sharpen"])
def test_filters_keep_size_and_change_pixels(operation):
    out = augment(NOISE, operation)
    assert out.size == NOISE.size and not np.array_equal(np.asarray(out), np.asarray(NOISE))
    assert augment(Image.new("L", (6, 9), 50), operation).size == (6, 9)  # tiny images work


def test_unknown_augmentation():
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment(GRAY, "twirl")


def test_stretch_and_pad():
    wide = Image.new("L", (60, 20), 240)
    wide.paste(10, (20, 5, 40, 15))
    stretched = resize(wide, (30, 30), "stretch")
    assert stretched.shape == (30, 30)
    padded = resize(wide, (30, 30), "pad")
    # 60x20 fits as 30x10, centred: rows 10-19, background grey elsewhere.
    assert (padded[:10] == 240).all() and (padded[20:] == 240).all()
    assert padded[15, 15] < 50
    with pytest.raises(ValueError, match="resize mode"):
        resize(wide, (30, 30), "crop")  # type: ignore[arg-type]


def test_prepare_image_reports_size_after_operation():
    data = encode(Image.new("L", (40, 10), 128), "PNG")
    pixels, height, width = prepare_image(data, (8, 6), "stretch", "rot90")
    assert pixels.shape == (8, 6) and pixels.dtype == np.uint8
    assert (height, width) == (40, 10)


@pytest.mark.parametrize(("text", "size"), [("64x48", (64, 48)), ("32X32", (32, 32))])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["64", "ax48", "0x5", "64x48x3"])
def test_parse_size_refuses(text):
    with pytest.raises(ValueError, match="64x48"):
        parse_size(text)
