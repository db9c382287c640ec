"""Files uploaded with a multipart request (sendPhoto, sendDocument): what arrived, and a photo's sides.

A photo's width and height come from the image's own header: a PNG's IHDR chunk or a JPEG's start-of-frame
marker. Reading them by hand takes a few lines, where Pillow would be a heavy import for the stand-in, and
would only arrive with matplotlib (the report renderer's dependency, not the stand-in's). Telegram accepts
other formats as photos too (WebP, for one); the stand-in knows these two, which are the ones the bot sends,
and answers any other bytes as Telegram answers bytes that are no image.
"""

from __future__ import annotations

import hashlib
import mimetypes
import struct
from base64 import urlsafe_b64encode
from dataclasses import dataclass

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers carry the sides; C4 (Huffman tables), C8 (reserved) and CC (arithmetic coding
# conditioning) share the range but are not frames.
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length: TEM, RST0-7, SOI, EOI.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xDA)})


@dataclass(frozen=True)
class Upload:
    """One file part of a multipart request."""

    filename: str
    content: bytes
    mime_type: str

    @property
    def size(self) -> int:
        return len(self.content)

    def summary(self) -> dict[str, object]:
        """What the outbox and a test's assertion need; the bytes are in the saved file."""
        return {"file_name": self.filename, "mime_type": self.mime_type, "file_size": self.size}

    @property
    def file_unique_id(self) -> str:
        # Telegram gives the same file the same unique id whoever sends it: derived from the bytes here too.
        return "AQAD" + urlsafe_b64encode(hashlib.sha256(self.content).digest()[:12]).decode()


def upload_from_part(filename: str, content: bytes, content_type: str | None) -> Upload:
    """Telegram names a document's type from the part's Content-Type, or from the file name's extension
    when the client sent none or only the generic application/octet-stream."""
    mime = (content_type or "").lower()
    if not mime or mime == "application/octet-stream":
        mime = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    return Upload(filename=filename, content=content, mime_type=mime)


def image_sides(content: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG or JPEG image; None for anything else."""
    if content.startswith(_PNG_SIGNATURE):
        # The IHDR chunk comes first: length (4), type (4), then width and height as big-endian 32-bit.
        if len(content) >= 24 and content[12:16] == b"IHDR":
            width, height = struct.unpack(">II", content[16:24])
            return width, height
        return None
    if content.startswith(b"\xff\xd8"):
        return _jpeg_sides(content)
    return None


def _jpeg_sides(content: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 4 <= len(content):
        if content[at] != 0xFF:
            return None
        marker = content[at + 1]
        if marker == 0xFF:  # fill bytes may pad before a marker
            at += 1
            continue
        if marker in _JPEG_STANDALONE:
            at += 2
            continue
        (length,) = struct.unpack(">H", content[at + 2 : at + 4])
        if marker in _JPEG_FRAMES:
            if at + 9 > len(content):
                return None
            # Segment: length (2), sample precision (1), height (2), width (2).
            height, width = struct.unpack(">HH", content[at + 5 : at + 9])
            return width, height
        if marker == 0xDA:  # start of scan before any frame header: not an image we can measure
            return None
        at += 2 + length
    return None
