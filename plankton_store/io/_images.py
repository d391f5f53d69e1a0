"""Image operations shared by build-store and predict: decode, augment, resize.

Every image, whatever its file format and mode, goes through :func:`prepare_image`, so a
model sees at prediction time exactly what it was trained on.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Collection, Sequence
from typing import Literal

import numpy as np
import simplejpeg
from PIL import Image, ImageFilter, UnidentifiedImageError

ResizeMode = Literal["stretch", "pad"]
RESIZE_MODES: tuple[str, ...] = ("stretch", "pad")
#: Resampling filter of every resize (antialiased when shrinking).
RESAMPLE = Image.Resampling.BILINEAR


class ImageDecodeError(ValueError):
    """An image could not be turned into 8-bit grayscale; the message is the reject reason."""


_OPS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "none": lambda im: im,
    "flip_lr": lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "flip_tb": lambda im: im.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
    "rot90": lambda im: im.transpose(Image.Transpose.ROTATE_90),
    "blur": lambda im: im.filter(ImageFilter.BLUR),
    "smooth": lambda im: im.filter(ImageFilter.SMOOTH),
    "detail": lambda im: im.filter(ImageFilter.DETAIL),
    "sharpen": lambda im: im.filter(ImageFilter.SHARPEN),
}
#: The image operations by name, in the order of the store's augmentation codes
#: (:data:`plankton_store.store.format.AUGMENTATIONS` lists the same names).
OPERATIONS: tuple[str, ...] = tuple(_OPS)


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``"64x48"`` (height x width) into ``(64, 48)``.

    Raises
    ------
    ValueError
        If the text is not two positive integers joined by ``x``.
    """
    parts = text.lower().split("x")
    try:
        height, width = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"size {text!r} is not HEIGHTxWIDTH, e.g. 64x48") from None
    if height < 1 or width < 1:
        raise ValueError(f"size {text!r} must be positive, e.g. 64x48")
    return height, width


#: Operations that commute with scaling: their images may be decoded at reduced size.
GEOMETRIC_OPS = frozenset({"none", "flip_lr", "flip_tb", "rot90"})


def decode_gray(data: bytes, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode image bytes of any format and mode into an 8-bit grayscale (mode "L") image.

    Pillow's decompression-bomb guard stays on, and its warning (images between the limit and
    twice the limit) counts as an error too: such an image is rejected, never decoded.

    Parameters
    ----------
    data
        The encoded image.
    draft_size
        ``(width, height)`` the image will be shrunk to, if any: a JPEG is then decoded with
        Pillow's draft mode, which scales it down by 1/2, 1/4 or 1/8 in the DCT domain while
        staying at least that size (what ``Image.thumbnail`` does). Much faster for large
        images; the result differs from a full decode by a fraction of a grey level.

    Raises
    ------
    ImageDecodeError
        With a specific reason: empty file, not an image, truncated, too large, unsupported mode.
    """
    return _decode(data, draft_size)[0]


def _decode(data: bytes, draft_size: tuple[int, int] | None) -> tuple[Image.Image, int, int]:
    """The decoded grayscale image and the (height, width) stored in the file."""
    if not data:
        raise ImageDecodeError("empty file (0 bytes)")
    if data[:3] == _JPEG_START:
        decoded = _decode_jpeg_luma(data, draft_size)
        if decoded is not None:
            return decoded
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            width, height = im.size
            if im.format == "JPEG":
                # Decode the luma channel straight away: same pixels as convert("L"), faster.
                im.draft("L", draft_size or im.size)
            im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(f"decompression-bomb guard: {exc}") from None
    except UnidentifiedImageError:
        raise ImageDecodeError("not a readable image (unknown format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"corrupt or truncated image: {exc}") from None
    return _to_gray(im), height, width


_JPEG_START = b"\xff\xd8\xff"
#: JPEG colour spaces whose luma libjpeg hands out as it is (CMYK / YCCK need a conversion,
#: which Pillow does its own way).
_LUMA_COLORSPACES = frozenset({"Gray", "YCbCr"})


def _draft_scale(image_size: tuple[int, int], draft_size: tuple[int, int] | None) -> int:
    """The DCT-domain reduction (1, 2, 4 or 8) Pillow's ``JpegImageFile.draft`` picks for a
    ``(width, height)`` image asked to be at least ``draft_size``."""
    if draft_size is None:
        return 1
    ratio = min(image_size[0] // draft_size[0], image_size[1] // draft_size[1])
    return next((scale for scale in (8, 4, 2) if ratio >= scale), 1)


def _decode_jpeg_luma(
    data: bytes, draft_size: tuple[int, int] | None
) -> tuple[Image.Image, int, int] | None:
    """A JPEG's luma channel straight from libjpeg-turbo (simplejpeg), at Pillow's draft scale.

    The same pixels as Pillow's draft-mode decode, for half the time per small image: Pillow
    parses the JPEG markers in Python. None when this path cannot be sure to match: colour
    spaces other than grey and YCbCr, libjpeg warnings (damaged files) and images over the
    decompression-bomb limit take the Pillow path, which decodes them or rejects them with
    its reason.
    """
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
        if colorspace not in _LUMA_COLORSPACES:
            return None
        if Image.MAX_IMAGE_PIXELS and height * width > Image.MAX_IMAGE_PIXELS:
            return None
        scale = _draft_scale((width, height), draft_size)
        # The smallest of libjpeg's M/8 scalings that keeps these sizes is exactly 1/scale.
        luma = simplejpeg.decode_jpeg(
            data,
            colorspace="GRAY",
            min_height=-(-height // scale),
            min_width=-(-width // scale),
            strict=True,
        )
    except ValueError:
        return None
    rows, cols = luma.shape[:2]
    return Image.frombuffer("L", (cols, rows), luma, "raw", "L", 0, 1), height, width


def _to_gray(im: Image.Image) -> Image.Image:
    mode = im.mode
    if mode == "L":
        return im
    if mode.startswith("I;16") or mode in ("I", "F"):
        # Map the 16-bit range onto 8 bits linearly (convert("L") would clip at 255).
        arr = np.asarray(im, dtype=np.float64)
        return Image.fromarray(np.clip(arr / 257.0 + 0.5, 0, 255).astype(np.uint8))
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        # Transparent pixels become the light background, not black.
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("L")
    try:
        return im.convert("L")
    except (ValueError, OSError) as exc:
        raise ImageDecodeError(f"unsupported image mode {mode}: {exc}") from None


def augment(im: Image.Image, operation: str) -> Image.Image:
    """Apply one named augmentation (see :data:`plankton_store.store.format.AUGMENTATIONS`)."""
    try:
        return _OPS[operation](im)
    except KeyError:
        raise ValueError(f"unknown augmentation {operation!r}; known: {OPERATIONS}") from None


def background_level(im: Image.Image) -> int:
    """Background grey level: the median of the image border (plankton sit mid-frame)."""
    arr = np.asarray(im)
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    return int(np.median(border))


def resize(im: Image.Image, size: tuple[int, int], mode: ResizeMode = "stretch") -> np.ndarray:
    """Resize a grayscale image to ``size`` = (height, width).

    ``stretch`` fills the frame, distorting the aspect ratio; ``pad`` keeps the aspect ratio,
    fits the image inside the frame and centres it on its own background grey level.
    """
    height, width = size
    if mode == "stretch":
        return _pixels(im.resize((width, height), RESAMPLE))
    if mode != "pad":
        raise ValueError(f"resize mode {mode!r} is not one of {RESIZE_MODES}")
    scale = min(height / im.height, width / im.width)
    new_w = min(width, max(1, round(im.width * scale)))
    new_h = min(height, max(1, round(im.height * scale)))
    canvas = Image.new("L", (width, height), background_level(im))
    canvas.paste(im.resize((new_w, new_h), RESAMPLE), ((width - new_w) // 2, (height - new_h) // 2))
    return _pixels(canvas)


def _pixels(im: Image.Image) -> np.ndarray:
    """A mode "L" image's pixels, read-only, as ``np.asarray(im)`` gives them: from
    ``tobytes`` directly, ~5 us less per small image than the array interface."""
    return np.frombuffer(im.tobytes(), dtype=np.uint8).reshape(im.height, im.width)


def prepare_image(
    data: bytes,
    size: tuple[int, int],
    mode: ResizeMode = "stretch",
    operation: str = "none",
) -> tuple[np.ndarray, int, int]:
    """Decode, augment and resize one image.

    Returns
    -------
    pixels : numpy.ndarray
        uint8 array of shape ``size``.
    orig_height, orig_width : int
        Size after the operation and before resizing (``rot90`` swaps them).

    Raises
    ------
    ImageDecodeError
        If the bytes are not a usable image.
    """
    im, orig_height, orig_width = _decode(
        data, draft_target(size) if operation in GEOMETRIC_OPS else None
    )
    im = augment(im, operation)
    if operation == "rot90":
        orig_height, orig_width = orig_width, orig_height
    return resize(im, size, mode), orig_height, orig_width


def draft_target(size: tuple[int, int]) -> tuple[int, int]:
    """The draft-mode size for a target ``(height, width)``: a square of its longer side.

    Square, so that the decoded image covers the target in either orientation (rot90).
    """
    side = max(size)
    return side, side


def prepare_images(
    fetch: Callable[[str], bytes],
    refs: Sequence[str],
    operations: Sequence[str],
    size: tuple[int, int],
    mode: ResizeMode = "stretch",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, str]]:
    """Prepare a block of images; failures are returned, not raised.

    Returns
    -------
    pixels : numpy.ndarray
        ``(n, height, width)`` uint8; a failed image is left 0.
    orig_height, orig_width : numpy.ndarray
        int32 sizes; 0 for a failed image.
    failures : dict
        Position in ``refs`` -> reason.
    """
    n = len(refs)
    pixels = np.zeros((n, *size), dtype=np.uint8)
    orig_height = np.zeros(n, dtype=np.int32)
    orig_width = np.zeros(n, dtype=np.int32)
    failures: dict[int, str] = {}
    for i, (ref, operation) in enumerate(zip(refs, operations, strict=True)):
        try:
            data = fetch(ref)
        except (OSError, KeyError) as exc:
            failures[i] = f"image could not be read: {exc}"
            continue
        try:
            pixels[i], orig_height[i], orig_width[i] = prepare_image(data, size, mode, operation)
        except ImageDecodeError as exc:
            failures[i] = str(exc)
    return pixels, orig_height, orig_width, failures


def image_features(
    fetch: Callable[[str], bytes],
    refs: Sequence[str],
    operations: Sequence[str],
    skip: Collection[int] = (),
    columns: Sequence[str] | None = None,
) -> np.ndarray:
    """Shape and grey-level features of each image, at full resolution after its operation.

    The ``computed`` feature table of build-store ``--compute-features``, for exports without
    feature tables. Positions in ``skip`` (images that already failed) and images that cannot
    be read get a row of NaN.

    Parameters
    ----------
    columns
        Which columns, in order: default :data:`plankton_store.io.COMPUTED_COLUMNS`;
        a model trained on a store with fewer (an older build) names its own.

    Returns
    -------
    numpy.ndarray
        ``(len(refs), len(columns))`` float32.
    """
    from plankton_store.io._computed import COMPUTED_COLUMNS, FEATURE_COLUMNS, compute_features

    columns = list(COMPUTED_COLUMNS if columns is None else columns)
    unknown = sorted(set(columns) - set(COMPUTED_COLUMNS))
    if unknown:
        raise ValueError(f"no such computed feature(s): {unknown}")
    descriptors = not set(columns) <= set(FEATURE_COLUMNS)
    out = np.full((len(refs), len(columns)), np.nan, dtype=np.float32)
    for i, (ref, operation) in enumerate(zip(refs, operations, strict=True)):
        if i in skip:
            continue
        try:
            # No draft mode: size features need every pixel.
            im = augment(decode_gray(fetch(ref)), operation)
        except (OSError, KeyError, ImageDecodeError):
            continue
        values = compute_features(np.asarray(im), descriptors=descriptors)
        out[i] = [values[c] for c in columns]
    return out
