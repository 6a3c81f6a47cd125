"""menet_tf.imageio: each conversion against a numpy reference, each error naming the file.

16-bit PNGs (grey, grey + alpha, RGB, RGBA) are written here by a minimal PNG encoder (zlib + CRC),
independent of Pillow and TensorFlow; 8-bit files are written with Pillow from known arrays.
"""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from menet_tf.imageio import ImageError, is_image_file, read_image, write_image

RNG = np.random.default_rng(1234)


def png_bytes(arr: np.ndarray, bit_depth: int) -> bytes:
    """A PNG of ``arr`` (H x W or H x W x C, C = 2, 3, 4) with filter 0 on every row."""
    h, w = arr.shape[:2]
    c = 1 if arr.ndim == 2 else arr.shape[2]
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    dtype = ">u2" if bit_depth == 16 else "u1"
    raw = b"".join(b"\x00" + arr[y].astype(dtype).tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def to8(v16):
    """round(v * 255 / 65535) = floor(v / 257 + 1/2) (v / 257 is never exactly half-way)."""
    return np.floor(v16.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)


def rgb(grey):
    return np.repeat(grey[..., None], 3, axis=-1)


def u16(shape):
    a = RNG.integers(0, 65536, shape, dtype=np.uint16)
    a.flat[:4] = [0, 65535, 128, 32767]  # the extremes and values near rounding boundaries
    return a


def test_8bit_rgb_png_is_read_unchanged(tmp_path):
    a = RNG.integers(0, 256, (9, 13, 3), dtype=np.uint8)
    (tmp_path / "a.png").write_bytes(png_bytes(a, 8))
    got = read_image(str(tmp_path / "a.png"))
    assert got.dtype == np.uint8 and got.shape == (9, 13, 3) and np.array_equal(got, a)


def test_grayscale_is_copied_to_r_g_b(tmp_path):
    g = RNG.integers(0, 256, (7, 5), dtype=np.uint8)
    (tmp_path / "g.png").write_bytes(png_bytes(g, 8))
    assert np.array_equal(read_image(str(tmp_path / "g.png")), rgb(g))
    Image.fromarray(g, mode="L").save(tmp_path / "g.bmp")
    assert np.array_equal(read_image(str(tmp_path / "g.bmp")), rgb(g))


def test_one_bit_image_is_black_and_white(tmp_path):
    bits = RNG.integers(0, 2, (6, 9)).astype(bool)
    Image.fromarray(bits).save(tmp_path / "b.png")
    assert Image.open(tmp_path / "b.png").mode == "1"
    assert np.array_equal(read_image(str(tmp_path / "b.png")), rgb(bits.astype(np.uint8) * 255))


def test_grey_alpha_and_rgba_drop_alpha_without_compositing(tmp_path):
    la = RNG.integers(0, 256, (6, 8, 2), dtype=np.uint8)
    la[0, 0, 1] = 0  # fully transparent pixel keeps its grey value
    (tmp_path / "la.png").write_bytes(png_bytes(la, 8))
    assert np.array_equal(read_image(str(tmp_path / "la.png")), rgb(la[..., 0]))
    rgba = RNG.integers(0, 256, (6, 8, 4), dtype=np.uint8)
    rgba[1, 2, 3] = 0
    (tmp_path / "rgba.png").write_bytes(png_bytes(rgba, 8))
    assert np.array_equal(read_image(str(tmp_path / "rgba.png")), rgba[..., :3])


@pytest.mark.parametrize("transparency", [False, True])
def test_palette_is_looked_up(tmp_path, transparency):
    idx = RNG.integers(0, 40, (8, 11), dtype=np.uint8)
    palette = RNG.integers(0, 256, (256, 3), dtype=np.uint8)
    im = Image.fromarray(idx, mode="P")
    im.putpalette(palette.tobytes())
    kw = {"transparency": 3} if transparency else {}
    im.save(tmp_path / "p.png", **kw)
    with Image.open(tmp_path / "p.png") as check:
        assert check.mode == "P" and ("transparency" in check.info) == transparency
    assert np.array_equal(read_image(str(tmp_path / "p.png")), palette[idx])


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16bit_png_is_rounded_to_8bit(tmp_path, channels):
    shape = (9, 10) if channels == 1 else (9, 10, channels)
    v = u16(shape)
    (tmp_path / "s.png").write_bytes(png_bytes(v, 16))
    got = read_image(str(tmp_path / "s.png"))
    expected = {1: lambda: rgb(to8(v)), 2: lambda: rgb(to8(v[..., 0])), 3: lambda: to8(v), 4: lambda: to8(v[..., :3])}
    assert got.dtype == np.uint8 and np.array_equal(got, expected[channels]())
    assert to8(np.array([0, 65535, 128, 32767])).tolist() == [0, 255, 0, 127]


def test_16bit_png_written_by_pillow(tmp_path):
    v = u16((5, 6))
    Image.fromarray(v).save(tmp_path / "p16.png")
    assert np.array_equal(read_image(str(tmp_path / "p16.png")), rgb(to8(v)))


def test_32bit_integer_image(tmp_path):
    ok = RNG.integers(0, 256, (4, 5)).astype(np.int32)
    Image.fromarray(ok, mode="I").save(tmp_path / "i.tif")
    assert np.array_equal(read_image(str(tmp_path / "i.tif")), rgb(ok.astype(np.uint8)))
    bad = ok.copy()
    bad[0, 0] = 1000
    Image.fromarray(bad, mode="I").save(tmp_path / "big.tif")
    path = str(tmp_path / "big.tif")
    with pytest.raises(ImageError) as e:
        read_image(path)
    assert str(e.value) == f"{path}: I-mode image with values outside 0..255 cannot be read as 8-bit"


def test_jpeg_and_exif_orientation_only_on_request(tmp_path):
    a = RNG.integers(0, 256, (10, 16, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(a).save(tmp_path / "o.jpg", exif=exif, quality=95)
    path = str(tmp_path / "o.jpg")
    stored = np.asarray(Image.open(path).convert("RGB"))
    got = read_image(path)
    assert got.shape == (10, 16, 3) and np.array_equal(got, stored)  # as stored: pairs stay aligned
    turned = read_image(path, exif_transpose=True)
    assert turned.shape == (16, 10, 3) and np.array_equal(turned, np.rot90(stored, k=-1))


def _error(path):
    with pytest.raises(ImageError) as e:
        read_image(str(path))
    assert isinstance(e.value, ValueError) and e.value.path == str(path)
    assert str(e.value) == f"{path}: {e.value.problem}"
    return e.value.problem


def test_missing_and_non_image_files(tmp_path):
    assert _error(tmp_path / "nope.png") == "no such file"
    (tmp_path / "text.png").write_text("hello, not a picture")
    assert _error(tmp_path / "text.png") == "not an image, or a corrupt one (the format is not recognised)"
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert _error(tmp_path / "empty.jpg") == "not an image, or a corrupt one (the format is not recognised)"


def test_truncated_and_corrupt_png(tmp_path):
    a = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    data = png_bytes(a, 8)
    p = tmp_path / "t.png"
    for cut in (len(data) // 2, len(data) - 30):
        p.write_bytes(data[:cut])
        assert _error(p).startswith("corrupt or truncated image (")
    for cut in (len(data) - 20, len(data) - 12, len(data) - 1):  # pixel data complete, end missing
        p.write_bytes(data[:cut])
        assert _error(p) == "truncated PNG (no IEND chunk: the file is incomplete)"
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0x55  # one damaged byte in the pixel data: CRC / zlib failure
    p.write_bytes(bytes(bad))
    assert _error(p).startswith("corrupt or truncated image (")
    p.write_bytes(data[:40] + b"\0" * 20)  # signature and IHDR kept, the chunk after them garbage
    assert _error(p) == "not an image, or a corrupt one (the format is not recognised)"


def test_truncated_16bit_png(tmp_path):
    data = png_bytes(u16((20, 30, 3)), 16)
    p = tmp_path / "t16.png"
    p.write_bytes(data[: len(data) // 2])
    assert _error(p) == "corrupt or truncated 16-bit PNG (InvalidArgumentError)"


def test_truncated_jpeg(tmp_path):
    a = RNG.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    p = tmp_path / "t.jpg"
    for cut in (len(data) // 2, len(data) - 10):
        p.write_bytes(data[:cut])
        assert _error(p).startswith("corrupt or truncated image (")


def test_is_image_file():
    assert all(is_image_file(f"x/a{e}") for e in (".png", ".PNG", ".jpg", ".jpeg", ".bmp", ".tif", ".webp"))
    assert not any(is_image_file(f) for f in ("a.txt", "a.png.txt", "png", "a.db", "a"))


def test_write_image_rounds_clips_and_creates_folders(tmp_path):
    f = np.array([[[-3.2, 0.5, 1.5], [2.5, 254.6, 300.0]]])
    path = tmp_path / "new" / "dir" / "w.png"
    write_image(str(path), f)
    assert read_image(str(path)).tolist() == [[[0, 0, 2], [2, 255, 255]]]  # numpy round: half to even
    a = RNG.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    write_image(str(tmp_path / "a.png"), a)
    assert np.array_equal(read_image(str(tmp_path / "a.png")), a)
