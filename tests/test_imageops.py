"""Image decoding, augmentation and resizing."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from plankton_store.io import (
    ImageDecodeError,
    augment,
    decode_gray,
    image_features,
    parse_size,
    prepare_image,
    resize,
)
from plankton_store.io._images import _decode_jpeg_luma


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


@pytest.mark.parametrize("kind", ["L", "RGB 4:2:0", "RGB 4:4:4 progressive", "CMYK"])
@pytest.mark.parametrize("height, width", [(30, 41), (70, 130), (300, 150), (700, 555)])
@pytest.mark.parametrize("operation", ["none", "rot90", "sharpen"])
def test_jpeg_pixels_equal_pillow_draft_decode(kind, height, width, operation):
    """JPEGs decode (through libjpeg-turbo directly, or Pillow for what that path declines,
    such as CMYK) to exactly Pillow's draft-mode pixels, at every DCT reduction (1 to 8)."""
    rng = np.random.default_rng(height)
    im = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((width, height))
    options = {"quality": 90, "subsampling": 2 if "4:2:0" in kind else 0}
    options["progressive"] = "progressive" in kind
    im = im.convert(kind.split()[0])
    buf = io.BytesIO()
    im.save(buf, format="JPEG", **options)
    data = buf.getvalue()

    size = (64, 48)
    with Image.open(io.BytesIO(data)) as expected:
        # Luma straight from the decoder, shrunk in the DCT domain unless a filter follows.
        expected.draft("L", (64, 64) if operation != "sharpen" else expected.size)
        expected = augment(expected.convert("L"), operation)
        expected = np.asarray(expected.resize(size[::-1], Image.Resampling.BILINEAR))
    # The libjpeg-turbo path takes every JPEG here but CMYK ones.
    assert (_decode_jpeg_luma(data, (64, 64)) is None) == (kind == "CMYK")
    pixels, orig_height, orig_width = prepare_image(data, size, "stretch", operation)
    np.testing.assert_array_equal(pixels, expected)
    turned = operation == "rot90"
    assert (orig_height, orig_width) == ((width, height) if turned else (height, width))


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


def test_image_features_give_the_columns_a_model_asks_for():
    """A model trained on an older store (native columns only) gets just those columns."""
    from plankton_store.io import COMPUTED_COLUMNS, FEATURE_COLUMNS

    im = Image.new("L", (40, 30), 220)
    im.paste(40, (5, 5, 25, 20))
    files = {"a.png": encode(im, "PNG"), "bad.png": b"not an image"}
    everything = image_features(files.__getitem__, ["a.png", "bad.png"], ["none", "flip_lr"])
    assert everything.shape == (2, len(COMPUTED_COLUMNS)) and everything.dtype == np.float32
    assert everything[0, COMPUTED_COLUMNS.index("area")] == 300
    assert np.isfinite(everything[0, len(FEATURE_COLUMNS) :]).all()  # the descriptors
    assert np.isnan(everything[1]).all()  # unreadable: a row of NaN, not an error
    native = image_features(files.__getitem__, ["a.png"], ["none"], columns=FEATURE_COLUMNS)
    np.testing.assert_array_equal(native[0], everything[0, : len(FEATURE_COLUMNS)])
    some = image_features(files.__getitem__, ["a.png"], ["none"], columns=["parts", "area"])
    assert some[0].tolist() == [1.0, 300.0]
    with pytest.raises(ValueError, match="no such computed feature"):
        image_features(files.__getitem__, ["a.png"], ["none"], columns=["area", "colour"])
