"""One decoder for every image file the tool reads (image folders, `eval`'s PNG samples): any bit depth to uint8.

| stored as                                  | decoded as                                                          |
|--------------------------------------------|---------------------------------------------------------------------|
| 8-bit L, RGB, CMYK, YCbCr (JPEG)           | L or RGB, unchanged                                                 |
| 1-bit                                      | L: 0 or 255                                                         |
| palette (P, PA)                            | RGB through the palette (transparency dropped)                      |
| LA, RGBA                                   | L or RGB: the alpha channel is dropped, the colours kept            |
| 16-bit grey (I;16*, PNG opened as I)       | L scaled by 255 / 65535 (round(x / 257)): 65535 -> 255, not clipped |
| 16-bit RGB / RGBA PNG                      | RGB; Pillow keeps the high byte of each sample (floor(x / 256))     |
| 32-bit integer (I), floating point (F)     | refused: such files carry no range to scale from                    |
"""

import io
import struct

import numpy as np
from PIL import Image

from ..errors import DataError, first_line

GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_SIXTEEN_BIT = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)


def _png_bit_depth(data: bytes) -> int | None:
    """The bit depth in a PNG's IHDR chunk (byte 24), or None for another format."""
    return data[24] if data[:8] == _PNG_SIGNATURE and len(data) > 24 else None


def _to_eight_bits(im: Image.Image, data: bytes, where: str) -> Image.Image:
    """Any mode -> an 8-bit L, LA, RGB or RGBA image; 16-bit grey scaled to 0..255, unknown ranges refused."""
    if im.mode in _SIXTEEN_BIT or (im.mode == "I" and _png_bit_depth(data) == 16):  # old Pillow: 16-bit PNG as I
        x = np.asarray(im).astype(np.uint32)  # (H, W) in 0..65535
        return Image.fromarray(((x * 255 + 32767) // 65535).astype(np.uint8), "L")  # round(x * 255 / 65535)
    if im.mode in ("I", "F"):
        kind = "32-bit integer" if im.mode == "I" else "floating-point"
        raise DataError(
            f"{where} holds {kind} pixels, whose range cannot be told; save it as an 8- or 16-bit PNG or a JPEG"
        )
    if im.mode in ("P", "PA"):  # through the palette; RGBA first so a transparent palette raises no warning
        return im.convert("RGBA")
    return im


def decode_image(data: bytes, where: str, channels: int | None = None, size: tuple[int, int] | None = None):
    """One image file -> uint8 (H, W) if grey (or channels=1), else (H, W, 3); resized to size (H, W) if given.

    Args:
        where: the file's name for error messages.
        channels: 1 (grey, ITU-R 601 luma for colour files) or 3 (RGB; grey repeated); None keeps the file's.
    A file that is not an image, or whose pixel range cannot be known, is a one-line DataError.
    """
    try:
        with Image.open(io.BytesIO(data)) as im:
            gray = channels == 1 or (channels is None and im.mode in GRAY_MODES)
            im = _to_eight_bits(im, data, where).convert("L" if gray else "RGB")
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.Resampling.BICUBIC)  # PIL sizes are (W, H)
            return np.asarray(im)
    except DataError:
        raise
    except _DECODE_ERRORS as e:
        raise DataError(f"{where} is not a readable image ({first_line(e)}); delete or replace it") from e
