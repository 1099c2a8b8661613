"""A reader's photo: only real images pass, they come out square, small and without the upload's metadata."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from api.marketplace.photo_image import MAX_UPLOAD_BYTES, SIDE, PhotoRejected, process


def jpeg_with_gps(width: int = 800, height: int = 600, orientation: int = 1) -> bytes:
    image = Image.new("RGB", (width, height), (200, 40, 40))
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    exif[0x010F] = "SpyCam"  # Make
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}  # GPS IFD
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, comment=b"secret comment")
    return out.getvalue()


def test_a_photo_comes_out_square_resized_and_without_exif_gps_or_comment() -> None:
    raw = jpeg_with_gps()
    assert b"SpyCam" in raw and b"secret comment" in raw
    photo = process(raw)
    out = Image.open(io.BytesIO(photo.image))
    assert (out.format, out.size, photo.content_type) == ("JPEG", (SIDE, SIDE), "image/jpeg")
    assert not out.getexif() and "comment" not in out.info and "icc_profile" not in out.info
    assert b"SpyCam" not in photo.image and b"secret comment" not in photo.image
    assert len(photo.version) == 16 and process(raw).version == photo.version


def test_the_exif_orientation_is_applied_before_it_is_dropped() -> None:
    # A landscape picture the camera says to turn a quarter: the kept pixels are turned, the tag is gone.
    image = Image.new("RGB", (400, 200), (0, 0, 255))
    image.paste((255, 255, 0), (0, 0, 200, 200))  # left half yellow
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    kept = Image.open(io.BytesIO(process(out.getvalue()).image)).convert("RGB")
    top, bottom = kept.getpixel((SIDE // 2, 5)), kept.getpixel((SIDE // 2, SIDE - 5))
    assert top[2] < 100 < top[0]  # yellow on top once upright
    assert bottom[2] > 150


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "GIF"])
def test_png_webp_and_gif_are_taken(fmt: str) -> None:
    out = io.BytesIO()
    Image.new("RGBA" if fmt != "GIF" else "P", (300, 900)).save(out, fmt)
    assert Image.open(io.BytesIO(process(out.getvalue()).image)).size == (SIDE, SIDE)


def _png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("data, why", [
    (b"", "empty"),
    (b"GIF89a not really", "not an image we can read"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not an image we can read"),
    (b"%PDF-1.4\n" + b"0" * 100, "not an image we can read"),
    (_png_claiming(30_000, 30_000), "too large"),
    (b"\x00" * (MAX_UPLOAD_BYTES + 1), "at most 5 MB"),
])
def test_what_is_not_a_usable_image_is_refused_with_a_reason(data: bytes, why: str) -> None:
    with pytest.raises(PhotoRejected, match=why):
        process(data)


def test_a_truncated_image_is_refused() -> None:
    out = io.BytesIO()
    Image.effect_noise((300, 300), 50).convert("RGB").save(out, "PNG")
    with pytest.raises(PhotoRejected):
        process(out.getvalue()[: len(out.getvalue()) // 2])


def test_a_bmp_is_refused_even_though_pillow_reads_it() -> None:
    out = io.BytesIO()
    Image.new("RGB", (10, 10)).save(out, "BMP")
    with pytest.raises(PhotoRejected, match="JPEG, PNG, WebP or GIF"):
        process(out.getvalue())
