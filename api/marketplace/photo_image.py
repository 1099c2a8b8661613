"""A reader's photo as we keep it: decoded by Pillow (so only a real image passes), turned upright, cropped to a
square, resized and re-encoded as a fresh JPEG that carries none of the upload's metadata (EXIF, GPS, ICC,
comments). Pure: bytes in, bytes out; the routes run it off the event loop (it is CPU work, and the relay
shares that loop)."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
SIDE = 480  # pixels: twice the largest size a page shows it at, for sharp high-density screens
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF"})
# A small file can claim a huge canvas (a "decompression bomb"): refuse before decoding anything that big.
MAX_PIXELS = 40_000_000
JPEG_QUALITY = 85


class PhotoRejected(ValueError):
    """The upload is not an image we take; the message says why, in the reader's words."""


@dataclass(frozen=True)
class Photo:
    image: bytes
    content_type: str
    width: int
    height: int

    @property
    def version(self) -> str:
        """Changes whenever the bytes do: the photo's URL carries it, so it can be cached for good."""
        return hashlib.sha256(self.image).hexdigest()[:16]


def process(data: bytes) -> Photo:
    """The photo to keep from an upload, or :class:`PhotoRejected`."""
    if not data:
        raise PhotoRejected("the file is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise PhotoRejected(f"a photo must be at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                if probe.format not in ACCEPTED_FORMATS:
                    raise PhotoRejected("a photo must be a JPEG, PNG, WebP or GIF image")
                width, height = probe.size
                if width * height > MAX_PIXELS:
                    raise PhotoRejected("this image is too large (at most 40 megapixels)")
                probe.verify()  # the file's structure, before any pixel is decoded
            with Image.open(io.BytesIO(data)) as source:
                source.seek(0)  # an animated GIF or WebP: its first frame
                upright = ImageOps.exif_transpose(source)
                square = ImageOps.fit(upright.convert("RGB"), (SIDE, SIDE), Image.Resampling.LANCZOS)
    except PhotoRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoRejected("this image is too large (at most 40 megapixels)") from None
    except UnidentifiedImageError:
        raise PhotoRejected("this file is not an image we can read") from None
    except (OSError, SyntaxError, ValueError, EOFError):  # what Pillow raises on a truncated or corrupt file
        raise PhotoRejected("this image is damaged or incomplete") from None
    # A new image holds the pixels only: nothing of the upload's info (EXIF, GPS, ICC profile) travels on.
    clean = Image.new("RGB", square.size)
    clean.paste(square)
    out = io.BytesIO()
    clean.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
    return Photo(image=out.getvalue(), content_type="image/jpeg", width=SIDE, height=SIDE)
