"""Reading and writing images as RGB uint8, with one documented conversion per kind of input.

Conversions (everything becomes H x W x 3 uint8):
  * grayscale (L, 1-bit, 32-bit I/F with values 0..255) -> the grey value copied to R, G and B;
  * grayscale + alpha (LA), RGBA, CMYK, YCbCr, palette (P, PA) -> RGB, alpha dropped (not composited:
    rain data sets are opaque; a transparent area keeps its colour values);
  * 16-bit PNG (grey or RGB, with or without alpha) -> round(v * 255 / 65535);
  * JPEG EXIF orientation is applied only when asked (``exif_transpose=True``: real photos), never for
    paired training data, where rainy and clean must stay aligned as stored.

Any unreadable file raises :class:`ImageError`, whose message names the file and the problem: a missing
file ("no such file"), a file that is not an image or whose header is broken ("not an image, or a
corrupt one"), a corrupt or truncated PNG/JPEG ("corrupt or truncated image (...)", "truncated PNG (no
IEND chunk ...)", "corrupt or truncated 16-bit PNG (...)"), a 32-bit image with values outside 0..255.
"""

from __future__ import annotations

import os
import struct

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk: length 0, type, CRC


class ImageError(ValueError):
    """An image file that cannot be used; ``str()`` names the file and the problem."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def is_image_file(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def _png_bit_depth(path: str) -> int | None:
    """Bit depth from a PNG's IHDR chunk, or None when the file is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(33)
    if not head.startswith(_PNG_SIGNATURE) or len(head) < 26:
        return None
    return head[24]


def _png_has_end(path: str) -> bool:
    """True when the PNG file holds its IEND chunk (Pillow decodes a file cut just after its pixel
    data without complaint; such a file is still truncated)."""
    with open(path, "rb") as f:
        return f.read().rfind(_PNG_IEND) >= 0


def _read_png16(path: str) -> np.ndarray:
    import tensorflow as tf  # only for this rare case; keeps plain reading TF-free

    with open(path, "rb") as f:
        data = f.read()
    try:
        img = tf.io.decode_png(data, channels=0, dtype=tf.uint16).numpy().astype(np.float64)
    except Exception as e:  # noqa: BLE001 - TF raises several error types for broken PNGs
        raise ImageError(path, f"corrupt or truncated 16-bit PNG ({type(e).__name__})") from None
    img = np.round(img * (255.0 / 65535.0)).astype(np.uint8)
    channels = img.shape[-1]
    if channels in (1, 2):  # grey, grey + alpha
        img = np.repeat(img[..., :1], 3, axis=-1)
    return np.ascontiguousarray(img[..., :3])


def read_image(path: str, exif_transpose: bool = False) -> np.ndarray:
    """Read ``path`` as an H x W x 3 uint8 RGB array (see the module docstring for conversions)."""
    if not os.path.isfile(path):
        raise ImageError(path, "no such file")
    try:
        if _png_bit_depth(path) == 16:
            return _read_png16(path)
    except struct.error:
        pass
    try:
        with Image.open(path) as img:
            img.load()
            if img.format == "PNG" and not _png_has_end(path):
                raise ImageError(path, "truncated PNG (no IEND chunk: the file is incomplete)")
            if exif_transpose:
                img = ImageOps.exif_transpose(img)
            return _to_rgb_uint8(img, path)
    except UnidentifiedImageError:
        raise ImageError(path, "not an image, or a corrupt one (the format is not recognised)") from None
    except (OSError, SyntaxError, ValueError) as e:
        if isinstance(e, ImageError):
            raise
        raise ImageError(path, f"corrupt or truncated image ({e})") from None


def _to_rgb_uint8(img: Image.Image, path: str) -> np.ndarray:
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8)
    if mode in ("I", "F", "I;16", "I;16B", "I;16L"):
        a = np.asarray(img)
        if mode.startswith("I;16"):
            a = np.round(a.astype(np.float64) * (255.0 / 65535.0))
        elif a.max(initial=0) > 255 or a.min(initial=0) < 0:
            raise ImageError(path, f"{mode}-mode image with values outside 0..255 cannot be read as 8-bit")
        a = a.astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=-1)
    if mode in ("P", "PA") and "transparency" in img.info:
        img = img.convert("RGBA")
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def write_image(path: str, image, before_rename=None) -> None:
    """Write an H x W x 3 image (uint8, or float 0..255 rounded and clipped) as PNG/JPEG by extension,
    whole or not at all (a temporary name in the same folder, then a rename; ``before_rename()`` runs
    between the two, for crash tests)."""
    from menet_tf import atomic

    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = np.clip(np.round(a.astype(np.float64)), 0, 255).astype(np.uint8)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    with atomic.atomic_path(path) as tmp:
        Image.fromarray(a).save(tmp)
        if before_rename is not None:
            before_rename()


def list_image_inputs(path: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The image files to de-rain (a file, or a folder's image files, not recursive), and every other
    entry of the folder with the reason it is not processed (a dangling link, a folder, a GIF, a file
    that is not an image), so that nothing is skipped silently."""
    if not os.path.isdir(path):
        return [path], []
    inputs, others = [], []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        ext = os.path.splitext(name)[1].lower()
        if os.path.islink(full) and not os.path.exists(full):
            others.append((full, f"a dangling link (to {os.readlink(full)})"))
        elif os.path.isdir(full):
            others.append((full, "a folder with an image file name" if is_image_file(name) else "a folder (not recursed into)"))
        elif is_image_file(name):
            inputs.append(full)
        elif ext == ".gif":
            others.append((full, _gif_reason(full)))
        else:
            others.append((full, f"not an image file ({ext or 'no extension'}; "
                                  "PNG, JPEG, BMP, TIFF and WebP are read)"))
    return inputs, others


def _gif_reason(path: str) -> str:
    try:
        with Image.open(path) as im:
            frames = getattr(im, "n_frames", 1)
    except Exception:  # noqa: BLE001 - any unreadable GIF is reported as such
        return "a GIF that cannot be read"
    if frames > 1:
        return f"an animated GIF ({frames} frames): de-rain its frames as PNGs"
    return "a GIF (palette colours): convert it to PNG"
