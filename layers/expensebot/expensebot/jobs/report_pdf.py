"""A small PDF writer for the monthly report: text lines in embedded TrueType fonts and one PNG image, on A4
pages. Used instead of matplotlib's PDF backend, which laid out and subset its fonts again for every document
and made the PDF three quarters of a report's time (make bench, report_render).

Each font (a cut-down DejaVu Sans, see report_render._report_fonts) is embedded whole (Type 0, Identity-H,
CID = glyph id) with a ToUnicode map, so the text is searchable and copyable, Cyrillic included; its PDF
objects are built once per process and reused by every document. The PNG goes in as it is: its IDAT data is
already a Flate stream with PNG predictors, which PDF reads directly (no re-encoding)."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

A4 = (595.28, 841.89)  # points


@dataclass(frozen=True)
class EmbeddedFont:
    """A TrueType font ready for PDF: its objects (without numbers) and what text layout needs."""

    name: str
    widths: dict[str, float]  # advance per character, in 1/1000 of the font size
    glyphs: dict[str, int]  # glyph id per character
    font_file: bytes  # the FontFile2 stream, compressed
    widths_array: str  # the CIDFont's /W
    to_unicode: bytes  # the ToUnicode CMap stream, compressed
    ascent: float
    descent: float
    bbox: tuple[int, int, int, int]

    def width(self, text: str, size: float) -> float:
        return sum(self.widths.get(ch, 600.0) for ch in text) * size / 1000

    def encode(self, text: str) -> str:
        return "".join(f"{self.glyphs.get(ch, 0):04X}" for ch in text)


@cache
def load_font(path: str) -> EmbeddedFont:
    """The font at `path`, once per process."""
    from fontTools.ttLib import TTFont

    font = TTFont(path)
    scale = 1000 / font["head"].unitsPerEm
    cmap = font.getBestCmap()
    order = font.getGlyphOrder()
    gid = {name: index for index, name in enumerate(order)}
    hmtx = font["hmtx"].metrics
    glyphs = {chr(code): gid[name] for code, name in cmap.items()}
    widths = {ch: hmtx[order[g]][0] * scale for ch, g in glyphs.items()}
    all_widths = " ".join(f"{round(hmtx[name][0] * scale)}" for name in order)
    pairs = sorted((g, ch) for ch, g in glyphs.items())
    blocks = [pairs[i : i + 100] for i in range(0, len(pairs), 100)]
    cmap_text = (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        + "".join(
            f"{len(block)} beginbfchar\n"
            + "".join(f"<{g:04X}> <{ch.encode('utf-16-be').hex().upper()}>\n" for g, ch in block)
            + "endbfchar\n"
            for block in blocks
        )
        + "endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    )
    head = font["head"]
    hhea = font["hhea"]
    name = str(font["name"].getDebugName(6) or Path(path).stem).replace(" ", "")
    return EmbeddedFont(
        name=name,
        widths=widths,
        glyphs=glyphs,
        font_file=zlib.compress(Path(path).read_bytes(), 6),
        widths_array=f"[0 [{all_widths}]]",
        to_unicode=zlib.compress(cmap_text.encode("ascii"), 6),
        ascent=hhea.ascent * scale,
        descent=hhea.descent * scale,
        bbox=(round(head.xMin * scale), round(head.yMin * scale), round(head.xMax * scale), round(head.yMax * scale)),
    )


@dataclass(frozen=True)
class Png:
    width: int
    height: int
    data: bytes  # the IDAT chunks' data, joined: one zlib stream with PNG predictors
    colors: int


def read_png(png: bytes) -> Png:
    """An 8-bit, non-interlaced PNG (as report_render writes them) taken apart for PDF."""
    position, idat, header = 8, [], b""
    while position < len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        kind = png[position + 4 : position + 8]
        chunk = png[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat.append(chunk)
        position += 12 + length
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or interlace or colour_type not in (0, 2):
        raise ValueError("only 8-bit, non-interlaced grey or RGB PNGs are placed in a report")
    return Png(width, height, b"".join(idat), 3 if colour_type == 2 else 1)


def _escape_number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


@dataclass
class Document:
    """Pages of text lines and images, written as one PDF."""

    fonts: dict[str, EmbeddedFont]  # resource name (F1, F2) -> font
    title: str = ""
    pages: list[list[str]] = field(default_factory=list)  # each page's content operators
    images: list[Png] = field(default_factory=list)
    _page_images: list[list[int]] = field(default_factory=list)

    def new_page(self) -> None:
        self.pages.append([])
        self._page_images.append([])

    def text(self, x: float, y: float, text: str, *, font: str, size: float, align: str = "left",
             colour: tuple[float, float, float] | None = None) -> None:
        """One line whose baseline is at y (points from the bottom); `align` right puts its end at x."""
        embedded = self.fonts[font]
        if align == "right":
            x -= embedded.width(text, size)
        fill = f"{colour[0]:.3f} {colour[1]:.3f} {colour[2]:.3f} rg " if colour else ""
        self.pages[-1].append(
            f"BT {fill}/{font} {_escape_number(size)} Tf {_escape_number(x)} {_escape_number(y)} Td "
            f"<{embedded.encode(text)}> Tj ET" + (" 0 g" if colour else "")
        )

    def image(self, png: Png, x: float, y: float, width: float, height: float) -> None:
        self.images.append(png)
        number = len(self.images)
        self._page_images[-1].append(number)
        self.pages[-1].append(
            f"q {_escape_number(width)} 0 0 {_escape_number(height)} {_escape_number(x)} {_escape_number(y)} cm "
            f"/Im{number} Do Q"
        )

    def write(self) -> bytes:
        objects: list[bytes] = []

        def add(body: bytes) -> int:
            objects.append(body)
            return len(objects)

        def stream(data: bytes, extra: str = "") -> bytes:
            return f"<< /Length {len(data)} /Filter /FlateDecode {extra}>>\nstream\n".encode() + data + b"\nendstream"

        catalog = add(b"")  # filled in last
        pages_id = add(b"")
        font_ids: dict[str, int] = {}
        for resource, font in self.fonts.items():
            file_id = add(stream(font.font_file, f"/Length1 {len(zlib.decompress(font.font_file))} "))
            descriptor = add(
                f"<< /Type /FontDescriptor /FontName /{font.name} /Flags 32 /FontBBox [{' '.join(map(str, font.bbox))}]"
                f" /ItalicAngle 0 /Ascent {round(font.ascent)} /Descent {round(font.descent)} /CapHeight"
                f" {round(font.ascent)} /StemV 80 /FontFile2 {file_id} 0 R >>".encode()
            )
            cid = add(
                f"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /{font.name} /CIDSystemInfo << /Registry (Adobe)"
                f" /Ordering (Identity) /Supplement 0 >> /FontDescriptor {descriptor} 0 R /CIDToGIDMap /Identity"
                f" /W {font.widths_array} >>".encode()
            )
            unicode_id = add(stream(font.to_unicode))
            font_ids[resource] = add(
                f"<< /Type /Font /Subtype /Type0 /BaseFont /{font.name} /Encoding /Identity-H"
                f" /DescendantFonts [{cid} 0 R] /ToUnicode {unicode_id} 0 R >>".encode()
            )
        image_ids = [
            add(stream(png.data, f"/Type /XObject /Subtype /Image /Width {png.width} /Height {png.height}"
                                 f" /ColorSpace /{'DeviceRGB' if png.colors == 3 else 'DeviceGray'}"
                                 f" /BitsPerComponent 8 /DecodeParms << /Predictor 15 /Colors {png.colors}"
                                 f" /BitsPerComponent 8 /Columns {png.width} >> "))
            for png in self.images
        ]
        fonts = " ".join(f"/{resource} {number} 0 R" for resource, number in font_ids.items())
        page_ids = []
        for operators, images in zip(self.pages, self._page_images, strict=True):
            content = add(stream(zlib.compress("\n".join(operators).encode("ascii"), 6)))
            xobjects = " ".join(f"/Im{n} {image_ids[n - 1]} 0 R" for n in images)
            page_ids.append(add(
                f"<< /Type /Page /Parent {pages_id} 0 R /MediaBox [0 0 {A4[0]} {A4[1]}] /Contents {content} 0 R"
                f" /Resources << /Font << {fonts} >> /XObject << {xobjects} >> >> >>".encode()
            ))
        objects[pages_id - 1] = (
            f"<< /Type /Pages /Kids [{' '.join(f'{p} 0 R' for p in page_ids)}] /Count {len(page_ids)} >>".encode()
        )
        objects[catalog - 1] = f"<< /Type /Catalog /Pages {pages_id} 0 R >>".encode()
        info = add(f"<< /Title <FEFF{self.title.encode('utf-16-be').hex().upper()}> /Creator (ExpenseBot) >>".encode())
        out = bytearray(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for number, body in enumerate(objects, start=1):
            offsets.append(len(out))
            out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
        xref = len(out)
        out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
        out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
        out += (f"trailer\n<< /Size {len(objects) + 1} /Root {catalog} 0 R /Info {info} 0 R >>\n"
                f"startxref\n{xref}\n%%EOF\n").encode()
        return bytes(out)
