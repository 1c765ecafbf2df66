"""The checks every attachment passes, on files built here: the type comes from the content,
images are decoded whole and re-encoded with no metadata (GPS only when kept, never for
anonymous reporters), pixel bombs and damaged files are refused, and an anonymous reporter's
PDF that may name them is refused. The builders are shared with the integration tests."""

from __future__ import annotations

import io
import zlib

import pytest
from PIL import Image

from services.intake.attachments import files

MAKE, MODEL, SERIAL, OWNER = 0x010F, 0x0110, 0xA431, 0xA430
EXIF_IFD, GPS = 0x8769, 0x8825
GPS_POINT = {1: "S", 2: (0.0, 40.0, 16.32), 3: "E", 4: (100.0, 57.0, 7.56)}


def photo(fmt: str = "JPEG", *, gps: bool = True, size=(64, 48), orientation: int = 1) -> bytes:
    """A photo as a phone makes it: camera make and model, the body's serial number, the
    owner's name, a comment, and (with `gps`) where it was taken."""
    image = Image.new("RGB", size, (200, 30, 30))
    image.putpixel((0, 0), (0, 0, 255))  # a marker to see the orientation was applied
    exif = Image.Exif()
    exif[MAKE], exif[MODEL] = "Canon", "EOS 5D"
    exif[0x0112] = orientation
    exif[0x010E] = "Siti Rahayu's camera"
    exif[EXIF_IFD] = {SERIAL: "SN-0042-XYZ", OWNER: "Siti Rahayu"}
    if gps:
        exif[GPS] = GPS_POINT
    out = io.BytesIO()
    extra = {"comment": b"Siti Rahayu"} if fmt == "JPEG" else {}
    image.save(out, fmt, exif=exif.tobytes(), **extra)
    return out.getvalue()


def pdf(info: str = "") -> bytes:
    """A one-page PDF; `info` adds a document information dictionary (e.g. an author)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>"]
    if info:
        objects.append(f"<< {info} >>".encode())
    body, offsets = b"%PDF-1.4\n", []
    for number, obj in enumerate(objects, 1):
        offsets.append(len(body))
        body += f"{number} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(body)
    body += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    body += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    trailer = f"<< /Size {len(objects) + 1} /Root 1 0 R"
    trailer += f" /Info {len(objects)} 0 R >>" if info else " >>"
    return body + f"trailer\n{trailer}\nstartxref\n{xref}\n%%EOF\n".encode()


def exif_of(data: bytes) -> Image.Exif:
    return Image.open(io.BytesIO(data)).getexif()


def no_metadata(data: bytes) -> bool:
    image = Image.open(io.BytesIO(data))
    exif = image.getexif()
    return (len(exif) == 0 and not exif.get_ifd(EXIF_IFD) and not exif.get_ifd(GPS)
            and not {"comment", "icc_profile", "xmp", "exif"} & set(image.info)
            and b"Siti" not in data and b"Canon" not in data)


@pytest.mark.parametrize("fmt,kind", [("JPEG", files.JPEG), ("PNG", files.PNG),
                                      ("WEBP", files.WEBP)])
def test_every_piece_of_metadata_is_removed_from_a_photo(fmt, kind):
    original = photo(fmt)
    assert exif_of(original)[MAKE] == "Canon" and exif_of(original).get_ifd(GPS)
    cleaned = files.clean(original, anonymous=False, keep_location=False)
    assert cleaned.content_type == kind
    assert no_metadata(cleaned.data) and cleaned.public_data == cleaned.data
    assert not cleaned.location_kept
    assert Image.open(io.BytesIO(cleaned.data)).size == (64, 48)


def test_keep_location_keeps_the_gps_position_and_nothing_else():
    cleaned = files.clean(photo(), anonymous=False, keep_location=True)
    exif = exif_of(cleaned.data)
    assert set(exif) == {GPS} and cleaned.location_kept
    gps = exif.get_ifd(GPS)
    assert (gps[1], gps[3]) == ("S", "E")
    assert [float(v) for v in gps[2]] == pytest.approx([0.0, 40.0, 16.32])
    assert b"Canon" not in cleaned.data and b"SN-0042" not in cleaned.data
    # The public's copy never has it.
    assert no_metadata(cleaned.public_data)


def test_an_anonymous_reporter_keeps_nothing_even_when_asking():
    cleaned = files.clean(photo(), anonymous=True, keep_location=True)
    assert no_metadata(cleaned.data) and not cleaned.location_kept


def test_keep_location_without_a_position_in_the_photo_keeps_nothing():
    cleaned = files.clean(photo(gps=False), anonymous=False, keep_location=True)
    assert no_metadata(cleaned.data) and not cleaned.location_kept


def test_the_orientation_is_applied_before_the_tag_goes():
    cleaned = files.clean(photo("PNG", orientation=6), anonymous=False, keep_location=False)
    image = Image.open(io.BytesIO(cleaned.data))
    assert image.size == (48, 64)  # turned upright, as the viewer saw it
    assert 0x0112 not in image.getexif()


@pytest.mark.parametrize("data,code", [
    (b"MZ\x90\x00\x03" + b"\x00" * 200, "unsupported_type"),  # a .jpg that is a program
    (b"\x7fELF\x02\x01\x01" + b"\x00" * 200, "unsupported_type"),
    (b"<html><script>alert(1)</script></html>", "unsupported_type"),
    (b"GIF89a" + b"\x00" * 50, "unsupported_type"),
    (b"\x00\x00\x00\x18ftypheic" + b"\x00" * 50, "unsupported_type"),
    (b"", "empty_file"),
])
def test_a_file_that_is_not_an_accepted_type_is_refused_by_its_content(data, code):
    with pytest.raises(files.Refused) as refused:
        files.clean(data, anonymous=False, keep_location=False)
    assert refused.value.code == code and refused.value.message


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_truncated_image_is_refused(fmt):
    whole = photo(fmt, size=(400, 300))
    with pytest.raises(files.Refused) as refused:
        files.clean(whole[:len(whole) * 2 // 3], anonymous=False, keep_location=False)
    assert refused.value.code == "damaged_image"


def test_an_image_with_more_pixels_than_allowed_is_refused_before_decoding():
    with pytest.raises(files.Refused) as refused:
        files.clean(photo("PNG", size=(2000, 1000)), anonymous=False, keep_location=False,
                    max_pixels=1_000_000)
    assert refused.value.code == "image_too_large"


def test_a_decompression_bomb_is_refused():
    # A tiny PNG whose header claims far more pixels than Pillow's own bomb limit.
    out = io.BytesIO()
    Image.new("1", (20000, 20000)).save(out, "PNG")
    assert len(out.getvalue()) < 200_000
    with pytest.raises(files.Refused) as refused:
        files.clean(out.getvalue(), anonymous=False, keep_location=False)
    assert refused.value.code == "image_too_large"


def test_a_pdf_is_kept_as_sent():
    document = pdf()
    cleaned = files.clean(document, anonymous=True, keep_location=False)
    assert (cleaned.content_type, cleaned.data, cleaned.public_data) == (
        files.PDF, document, document)


def test_an_incomplete_pdf_is_refused():
    with pytest.raises(files.Refused) as refused:
        files.clean(pdf()[:-40], anonymous=False, keep_location=False)
    assert refused.value.code == "damaged_pdf"


@pytest.mark.parametrize("info", ["/Author (Siti Rahayu)", "/Title <53697469>"])
def test_a_pdf_that_may_name_its_author_is_refused_for_anonymous_reporters(info):
    with pytest.raises(files.Refused) as refused:
        files.clean(pdf(info), anonymous=True, keep_location=False)
    assert refused.value.code == "identifying_pdf" and "anonymous" in refused.value.message
    # A named reporter's is kept for them and the agency, never for the public.
    cleaned = files.clean(pdf(info), anonymous=False, keep_location=False)
    assert cleaned.data == pdf(info) and cleaned.public_data is None


def test_an_author_hidden_in_a_compressed_stream_is_found():
    hidden = zlib.compress(b"<< /Author (Siti Rahayu) >>")
    document = pdf().replace(b"xref", b"4 0 obj\n<< /Length %d /Filter /FlateDecode >>\n"
                             b"stream\n" % len(hidden) + hidden + b"\nendstream\nendobj\nxref")
    with pytest.raises(files.Refused) as refused:
        files.clean(document, anonymous=True, keep_location=False)
    assert refused.value.code == "identifying_pdf"


def test_the_producer_alone_does_not_name_anyone():
    document = pdf("/Producer (Skia/PDF m120) /Creator (Microsoft Word)")
    assert files.clean(document, anonymous=True, keep_location=False).public_data == document


def test_a_tiff_is_refused_though_pillow_reads_it():
    # The accepted types are ours, not whatever Pillow can open.
    out = io.BytesIO()
    Image.new("RGB", (10, 10)).save(out, "TIFF")
    with pytest.raises(files.Refused):
        files.clean(out.getvalue(), anonymous=False, keep_location=False)
