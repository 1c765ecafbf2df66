"""The checks every attachment passes, uploaded or fetched, without I/O: the type from the
bytes themselves (never the name or the declared type), images decoded whole by Pillow and
re-encoded without any metadata, PDFs checked for their header and end marker and, for
anonymous reporters, for fields that name a person."""

from __future__ import annotations

import io
import re
import zlib
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

JPEG, PNG, WEBP, PDF = "image/jpeg", "image/png", "image/webp", "application/pdf"
EXTENSIONS = {JPEG: "jpg", PNG: "png", WEBP: "webp", PDF: "pdf"}
ACCEPTED = "JPEG, PNG or WebP photos, or PDF documents"
GPS_IFD = 0x8825
DEFAULT_MAX_PIXELS = 40_000_000  # a 40-megapixel photo; far beyond any phone's


class Refused(Exception):
    """The file is not one we take; the message says what to send instead."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Cleaned:
    content_type: str
    data: bytes                   # what the reporter and the handling agency get
    public_data: bytes | None     # what the public may get (None: not for the public)
    location_kept: bool


def sniff(head: bytes) -> str | None:
    """The type the first bytes announce, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[:1024].lstrip(b"\x00\t\n\f\r ").startswith(b"%PDF-"):
        return PDF
    return None


def _is_heic(head: bytes) -> bool:
    return head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"hevc", b"heim",
                                                   b"heis", b"mif1", b"msf1", b"avif")


def clean(data: bytes, *, anonymous: bool, keep_location: bool,
          max_pixels: int = DEFAULT_MAX_PIXELS) -> Cleaned:
    """The file as it will be stored; Refused when it is not an image or PDF we take."""
    if not data:
        raise Refused("empty_file", "The file is empty; attach the photo or PDF itself")
    kind = sniff(data[:1100])
    if kind is None:
        if _is_heic(data[:16]):
            raise Refused("unsupported_type", "HEIC/HEIF photos are not accepted yet; set "
                          "the camera to 'Most compatible' (JPEG) or send a screenshot")
        raise Refused("unsupported_type", f"This file is not one of the accepted types: "
                      f"{ACCEPTED}. The type is read from the file's content, not its name")
    if kind == PDF:
        return _pdf(data, anonymous=anonymous)
    return _image(data, kind, keep_location=keep_location and not anonymous,
                  max_pixels=max_pixels)


# -- images -------------------------------------------------------------------------------------
_FORMATS = {JPEG: "JPEG", PNG: "PNG", WEBP: "WEBP"}


def _image(data: bytes, kind: str, *, keep_location: bool, max_pixels: int) -> Cleaned:
    try:
        image = Image.open(io.BytesIO(data), formats=[_FORMATS[kind]])
        width, height = image.size
        if width * height > max_pixels:
            raise Refused("image_too_large", f"The image is {width}x{height} pixels; send at "
                          f"most {max_pixels // 1_000_000} megapixels")
        image.load()  # decodes it all: a truncated or corrupt image fails here
        gps = image.getexif().get_ifd(GPS_IFD) if keep_location else {}
        # The picture the viewer saw: the orientation tag goes with the rest of the EXIF.
        upright = ImageOps.exif_transpose(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise Refused("image_too_large", f"The image has too many pixels; send at most "
                      f"{max_pixels // 1_000_000} megapixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        # Pillow's decoders report damage as any of these.
        raise Refused("damaged_image", "The image could not be read whole (it is damaged or "
                      "cut short); send it again, or take a screenshot of it") from exc
    output = _encode(upright, kind)
    if not gps:
        return Cleaned(kind, output, output, False)
    exif = Image.Exif()
    exif[GPS_IFD] = dict(gps)
    return Cleaned(kind, _encode(upright, kind, exif), output, True)


def _encode(image: Image.Image, kind: str, exif: Image.Exif | None = None) -> bytes:
    """The pixels alone (plus `exif` when given): no EXIF, XMP, ICC profile, comments or
    text chunks survive, because none is passed on."""
    if kind == JPEG and image.mode not in ("RGB", "L", "CMYK"):
        image = image.convert("RGB")
    elif kind in (PNG, WEBP) and image.mode not in ("RGB", "RGBA", "L", "LA", "P", "1"):
        image = image.convert("RGBA")
    # A fresh image, so no info (comments, XMP, text chunks) rides along.
    bare = Image.new(image.mode, image.size)
    if image.mode == "P":
        bare.putpalette(image.getpalette())
    bare.paste(image)
    out = io.BytesIO()
    options = {"exif": exif.tobytes()} if exif is not None else {}
    if kind == JPEG:
        bare.save(out, "JPEG", quality=90, optimize=True, **options)
    elif kind == PNG:
        bare.save(out, "PNG", optimize=True, **options)
    else:
        bare.save(out, "WEBP", quality=90, **options)
    return out.getvalue()


# -- PDFs ---------------------------------------------------------------------------------------
# Document properties that may name a person: the author, a title that is often the file
# name, and XMP (whose dc:creator is the author). Without a PDF library intake
# cannot rewrite a PDF, so an anonymous reporter's PDF carrying any of them is refused with
# a way out, never stored with them.
_IDENTIFYING = re.compile(rb"/(Author|Title|Subject|Keywords)\s*[(<]|"
                          rb"<x:xmpmeta|<rdf:RDF|/Metadata\s")
_STREAM = re.compile(rb"stream\r?\n(.*?)\r?\nendstream", re.S)
_MAX_INFLATED = 50 * 1024 * 1024


def _pdf(data: bytes, *, anonymous: bool) -> Cleaned:
    if b"%%EOF" not in data[-2048:]:
        raise Refused("damaged_pdf", "The PDF is incomplete (its end marker is missing); "
                      "save or download it again and send the whole file")
    identifying = _names_someone(data)
    if identifying and anonymous:
        raise Refused("identifying_pdf", "This PDF's document properties (author, title, "
                      "XMP metadata) may name you, and your report is anonymous. Remove them "
                      "(e.g. print the document to a new PDF, or clear File > Properties), "
                      "or send photos or screenshots of the pages instead")
    # Kept as sent for the reporter and the agency (who may see a named reporter's name);
    # never shown to the public when it may name the reporter.
    return Cleaned(PDF, data, None if identifying else data, False)


def _names_someone(data: bytes) -> bool:
    if _IDENTIFYING.search(data):
        return True
    # The document information dictionary and XMP may sit in compressed object streams.
    budget = _MAX_INFLATED
    for match in _STREAM.finditer(data):
        try:
            inflater = zlib.decompressobj()
            inflated = inflater.decompress(match.group(1), budget)
        except zlib.error:
            continue
        budget -= len(inflated)
        if _IDENTIFYING.search(inflated):
            return True
        if budget <= 0 or inflater.unconsumed_tail:
            # Too much to look through: treat as possibly identifying (safe side).
            return True
    return False
