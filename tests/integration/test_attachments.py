"""Attachments end to end, on SQLite and PostgreSQL where the table matters: a reporter
uploads a phone photo and the stored file has no camera, serial, owner or comment (GPS only
when a named reporter keeps it, never in the public copy); types are read from the content;
the size and count limits refuse with problem+json and store nothing; the virus-scan hook
decides; the handling agency's signed links work until they expire and not when changed; the
public sees files of public reports only; S3 through moto's real server; media URLs fetched
from a real local HTTP server by the supervised fetcher. Routing is a stand-in on a real gRPC
port (FakeRouting) where the staff view needs it, else unreachable."""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import os
import socket
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from PIL import Image

from services.infra.signed_links import LinkSigner
from services.intake import attachments, limits, storage
from services.intake.app import create_app
from services.intake.attachments.service import FILE_PURPOSE
from services.intake.server import IntakeProcess, ServerSettings
from services.notify import payloads
from tests.conftest import free_port
from tests.integration.helpers import dead_amqp_url, wait_for
from tests.integration.test_intake_server import FakeRouting
from tests.unit.intake.test_attachments_files import (
    GPS,
    MAKE,
    exif_of,
    no_metadata,
    pdf,
    photo,
)

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
NAME, EMAIL, PHONE = "Siti Rahayu", "siti.rahayu@example.id", "081234567890"
SECRET = "attachment-link-secret-for-tests-0123456789"
HIGH_LIMITS = {key: "100000 per minute" for key in limits.LIMIT_SETTINGS}


def report(**overrides) -> dict:
    return {"kind": "PENGADUAN", "title": "Jalan rusak di Nagari Muaro",
            "body": "Jalan utama berlubang besar dan aspalnya rusak sejak tiga bulan lalu.",
            "region_code": "13.03",
            "reporter": {"name": NAME, "email": EMAIL, "phone": PHONE}, **overrides}


def make_app(database_url: str, tmp_path, routing_port: int | None = None, **config):
    return create_app({
        "DATABASE_URL": database_url, "AMQP_URL": dead_amqp_url(),
        "ROUTING_ADDR": f"127.0.0.1:{routing_port or free_port()}", "ROUTING_TIMEOUT": 2.0,
        "START_WORKERS": False, "ATTACHMENTS_DIR": str(tmp_path / "files"),
        "ATTACHMENT_LINK_SECRET": SECRET, "MEDIA_POLL_SECONDS": 0.05, **HIGH_LIMITS,
        **config})


def close(app) -> None:
    ctx = app.extensions["lapor"]
    ctx.stop_workers(2)
    ctx.engine.dispose()


class Client:
    def __init__(self, app):
        self.app = app
        self.http = app.test_client()
        self.service = app.extensions["lapor"].attachments

    def submit(self, **overrides) -> tuple[str, str]:
        response = self.http.post("/api/v1/reports", json=report(**overrides))
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()["tracking_id"], response.get_json()["access_token"]

    def upload(self, tracking_id: str, token: str | None, data: bytes, *,
               filename: str = "foto.jpg", keep_location: str | None = None,
               content_type: str = "image/jpeg"):
        form = {"file": (io.BytesIO(data), filename, content_type)}
        if keep_location is not None:
            form["keep_location"] = keep_location
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.post(f"/api/v1/reports/{tracking_id}/attachments", data=form,
                              headers=headers, content_type="multipart/form-data")

    def stored(self, tracking_id: str, token: str, data: bytes, **kwargs) -> dict:
        response = self.upload(tracking_id, token, data, **kwargs)
        assert response.status_code == 201, response.get_data(as_text=True)
        assert response.headers["Location"] == response.get_json()["url"]
        return response.get_json()

    def get(self, path: str, token: str | None = None, **kwargs):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.get(path, headers=headers, **kwargs)

    def rows(self) -> list:
        with self.service.engine.connect() as conn:
            return conn.execute(sa.select(storage.attachments)).all()

    def files_on_disk(self) -> list:
        root = Path(self.app.config["ATTACHMENTS_DIR"])
        return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.fixture
def client(database_url, tmp_path):
    app = make_app(database_url, tmp_path)
    try:
        yield Client(app)
    finally:
        close(app)


@pytest.fixture
def sqlite_client(sqlite_url, tmp_path):
    app = make_app(sqlite_url, tmp_path)
    try:
        yield Client(app)
    finally:
        close(app)


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert (body["status"], body["code"]) == (status, code), body
    assert body["detail"]
    return body


def nothing_identifying(data: bytes) -> bool:
    return not any(s.encode() in data for s in (NAME, EMAIL, PHONE, "Canon", "SN-0042"))


# -- metadata --------------------------------------------------------------------------------
def test_a_photos_camera_serial_owner_and_location_are_removed(client):
    tracking_id, token = client.submit()
    original = photo()
    assert exif_of(original)[MAKE] == "Canon" and exif_of(original).get_ifd(GPS)
    shown = client.stored(tracking_id, token, original)
    assert shown["content_type"] == "image/jpeg" and shown["location_kept"] is False
    for path in (shown["url"],):
        for token_used in (token, None):  # the owner's copy and the public's
            served = client.get(path, token_used)
            assert served.status_code == 200 and served.mimetype == "image/jpeg"
            assert no_metadata(served.data) and nothing_identifying(served.data)
    assert all(nothing_identifying(p.read_bytes()) for p in client.files_on_disk())
    assert "foto.jpg" not in str(client.files_on_disk()), "never the client's file name"


def test_keep_location_keeps_only_the_gps_for_the_owner_and_the_agency_not_the_public(client):
    tracking_id, token = client.submit()
    shown = client.stored(tracking_id, token, photo(), keep_location="true")
    assert shown["location_kept"] is True
    owner = client.get(shown["url"], token).data
    assert set(exif_of(owner)) == {GPS} and exif_of(owner).get_ifd(GPS)[1] == "S"
    assert nothing_identifying(owner)
    staff = client.get(client_signed(client, shown["id"])).data
    assert staff == owner
    public = client.get(shown["url"]).data
    assert no_metadata(public)


def client_signed(client: Client, attachment_id: str) -> str:
    query = client.service.signed_query(FILE_PURPOSE, attachment_id)
    return f"/api/v1/attachments/{attachment_id}?expires={query['expires']}" \
           f"&signature={query['signature']}"


def test_an_anonymous_reporters_files_carry_nothing_that_identifies_them(client):
    tracking_id, token = client.submit(anonymous=True)
    shown = client.stored(tracking_id, token, photo("PNG"), keep_location="true",
                          filename="Siti Rahayu.png", content_type="image/png")
    assert shown["location_kept"] is False
    for served in (client.get(shown["url"], token), client.get(shown["url"]),
                   client.get(client_signed(client, shown["id"]))):
        assert served.status_code == 200 and no_metadata(served.data)
        assert nothing_identifying(served.data)
        assert NAME not in served.headers.get("Content-Disposition", "")
    named = client.upload(tracking_id, token, pdf("/Author (Siti Rahayu)"),
                          filename="surat.pdf", content_type="application/pdf")
    problem(named, 422, "identifying_pdf")
    assert len(client.rows()) == 1
    for answer in (client.get(f"/api/v1/reports/{tracking_id}/attachments", token),
                   client.get(f"/api/v1/reports/{tracking_id}/attachments")):
        assert answer.status_code == 200 and nothing_identifying(answer.data)


# -- types -------------------------------------------------------------------------------------
def test_types_are_read_from_the_content_not_the_name(sqlite_client):
    client = sqlite_client
    tracking_id, token = client.submit()
    program = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 500
    body = problem(client.upload(tracking_id, token, program, filename="foto.jpg"), 422,
                   "unsupported_type")
    assert "content" in body["detail"]
    whole = photo(size=(400, 300))
    problem(client.upload(tracking_id, token, whole[: len(whole) // 2]), 422, "damaged_image")
    assert client.rows() == [] and client.files_on_disk() == []

    # A photo named .pdf is a photo; a PDF named .jpg is a PDF.
    assert client.stored(tracking_id, token, photo(), filename="x.pdf",
                         content_type="application/pdf")["content_type"] == "image/jpeg"
    document = pdf("/Producer (Skia/PDF)")
    shown = client.stored(tracking_id, token, document, filename="x.jpg")
    assert shown["content_type"] == "application/pdf" and shown["size"] == len(document)
    served = client.get(shown["url"], token)
    assert served.data == document and served.mimetype == "application/pdf"
    assert served.headers["Content-Disposition"].startswith("attachment;")
    assert "sandbox" in served.headers["Content-Security-Policy"]


def test_the_same_file_sent_again_is_the_first_one(client):
    tracking_id, token = client.submit()
    first = client.upload(tracking_id, token, photo())
    again = client.upload(tracking_id, token, photo(), filename="retry.jpg")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    # With the position kept it is another file.
    assert client.upload(tracking_id, token, photo(), keep_location="true").status_code == 201
    assert len(client.rows()) == 2 and len(client.files_on_disk()) == 3


def test_an_upload_without_a_file_or_as_json_is_refused_saying_what_to_send(sqlite_client):
    client = sqlite_client
    tracking_id, token = client.submit()
    auth = {"Authorization": f"Bearer {token}"}
    path = f"/api/v1/reports/{tracking_id}/attachments"
    problem(client.http.post(path, json={"file": "x"}, headers=auth), 415,
            "unsupported_media_type")
    problem(client.http.post(path, data={"other": (io.BytesIO(photo()), "a.jpg")},
                             headers=auth, content_type="multipart/form-data"), 400,
            "file_required")
    problem(client.upload(tracking_id, token, photo(), keep_location="maybe"), 422,
            "validation_failed")
    problem(client.upload(tracking_id, None, photo()), 401, "access_token_required")
    other, other_token = client.submit()
    problem(client.upload(tracking_id, other_token, photo()), 403, "wrong_access_token")
    assert client.rows() == []


# -- limits --------------------------------------------------------------------------------------
def noise(size: int) -> bytes:
    """A PNG that does not compress: about 3*size*size bytes."""
    image = Image.frombytes("RGB", (size, size), os.urandom(3 * size * size))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_a_file_over_the_size_limit_is_refused_and_nothing_is_stored(sqlite_url, tmp_path):
    app = make_app(sqlite_url, tmp_path, ATTACHMENT_MAX_BYTES=20_000,
                   ATTACHMENT_MAX_PER_REPORT=2)
    try:
        client = Client(app)
        tracking_id, token = client.submit()
        big = noise(100)
        assert 20_000 < len(big) < 20_000 + 64 * 1024  # past the file limit, within the slack
        body = problem(client.upload(tracking_id, token, big, content_type="image/png"), 413,
                       "attachment_too_large")
        assert "19.5 KiB" in body["detail"] or "KiB" in body["detail"]
        huge = noise(200)  # past the limit with the multipart slack: refused by its length
        problem(client.upload(tracking_id, token, huge), 413, "attachment_too_large")
        assert client.rows() == [] and client.files_on_disk() == []
        client.stored(tracking_id, token, photo())
        client.stored(tracking_id, token, photo("PNG"), content_type="image/png")
        problem(client.upload(tracking_id, token, photo(size=(30, 20))), 409,
                "too_many_attachments")
        assert len(client.rows()) == 2
    finally:
        close(app)


def raw_http(port: int, head: bytes, body: bytes = b"", timeout: float = 10.0
             ) -> tuple[int, dict]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer or not _whole(answer):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    return status, json.loads(answer.split(b"\r\n\r\n", 1)[1] or b"{}")


def _whole(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def multipart(data: bytes, boundary: str = "lapor-boundary") -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n").encode() + data + \
        f"\r\n--{boundary}--\r\n".encode()


def test_the_real_server_takes_large_uploads_on_their_route_only(sqlite_url, tmp_path):
    app = make_app(sqlite_url, tmp_path, ATTACHMENT_MAX_BYTES=1024 * 1024,
                   ATTACHMENT_UPLOAD_SECONDS=5.0)
    process = IntakeProcess(app, ServerSettings(port=0, metrics_port=0, request_timeout=1.0,
                                                shutdown_seconds=3.0)).start()
    try:
        client = Client(app)
        tracking_id, token = client.submit()
        path = f"/api/v1/reports/{tracking_id}/attachments"
        picture = noise(350)  # ~370 KB: over the 256 KiB JSON limit, under the file limit
        assert 256 * 1024 < len(picture) < 1024 * 1024
        body = multipart(picture)
        status, answer = raw_http(process.port, (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: multipart/form-data; boundary=lapor-boundary\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode(), body)
        assert status == 201, answer
        assert answer["content_type"] == "image/png"

        # An upload may take longer to arrive than other requests (a slow mobile network).
        second = multipart(photo("PNG"))
        with socket.create_connection(("127.0.0.1", process.port), timeout=10) as sock:
            sock.sendall((
                f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: multipart/form-data; boundary=lapor-boundary\r\n"
                f"Content-Length: {len(second)}\r\nConnection: close\r\n\r\n").encode()
                + second[:100])
            time.sleep(1.5)  # past INTAKE_REQUEST_TIMEOUT (1 s), within the upload's 5 s
            sock.sendall(second[100:])
            assert sock.recv(65536).startswith(b"HTTP/1.1 201 ")

        # Over the limit: answered from the headers alone, the body never sent.
        status, answer = raw_http(process.port, (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: multipart/form-data; boundary=lapor-boundary\r\n"
            f"Content-Length: {50 * 1024 * 1024}\r\nConnection: close\r\n\r\n").encode())
        assert (status, answer["code"]) == (413, "attachment_too_large")
        assert "1 MiB" in answer["detail"]

        # Every other route keeps the small JSON limit.
        status, answer = raw_http(process.port, (
            f"POST /api/v1/reports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {400 * 1024}\r\nConnection: close\r\n\r\n").encode())
        assert (status, answer["code"]) == (413, "payload_too_large")
        assert len(client.rows()) == 2
    finally:
        process.stop()


# -- the virus-scan hook -----------------------------------------------------------------------
def scanner(tmp_path, name: str, script: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("script,status,code", [
    ("cat > /dev/null; exit 0", 201, None),
    ("grep -q EICAR && exit 1; exit 0", 422, "infected_file"),
    ("cat > /dev/null; echo 'database missing' >&2; exit 2", 503, "attachments_unavailable"),
    ("sleep 5", 503, "attachments_unavailable"),
])
def test_the_virus_scan_hook_decides(sqlite_url, tmp_path, script, status, code):
    app = make_app(sqlite_url, tmp_path, VIRUS_SCAN_TIMEOUT=0.5,
                   VIRUS_SCAN_COMMAND=scanner(tmp_path, "scan", script) + " --stdin")
    try:
        client = Client(app)
        tracking_id, token = client.submit()
        infected = pdf("/Producer (EICAR-STANDARD-ANTIVIRUS-TEST-FILE)")
        response = client.upload(tracking_id, token, infected, content_type="application/pdf")
        if code is None:
            assert response.status_code == 201
            assert len(client.rows()) == 1
            return
        body = problem(response, status, code)
        if status == 503:
            assert response.headers["Retry-After"]
        assert "EICAR" not in json.dumps(body)
        assert client.rows() == [] and client.files_on_disk() == []
    finally:
        close(app)


# -- who sees what -----------------------------------------------------------------------------
def test_the_public_sees_files_of_public_reports_only(client):
    public_id, public_token = client.submit()
    secret_id, secret_token = client.submit(confidential=True)
    anonymous_id, anonymous_token = client.submit(anonymous=True)
    shown = {tid: client.stored(tid, token, photo())
             for tid, token in ((public_id, public_token), (secret_id, secret_token),
                                (anonymous_id, anonymous_token))}

    def public_list(tracking_id):
        answer = client.get(f"/api/v1/reports/{tracking_id}/attachments")
        assert answer.status_code == 200
        return [a["id"] for a in answer.get_json()["attachments"]]

    assert public_list(public_id) == [shown[public_id]["id"]]
    assert public_list(anonymous_id) == [shown[anonymous_id]["id"]]
    assert public_list(secret_id) == []
    problem(client.get(shown[secret_id]["url"]), 404, "attachment_not_found")
    # The public list says nothing of size, hash or location: an allow-list.
    (entry,) = client.get(f"/api/v1/reports/{public_id}/attachments").get_json()["attachments"]
    assert set(entry) == {"id", "content_type", "created_at", "url"}

    # The reporter sees their own, whatever the report's privacy.
    owner = client.get(f"/api/v1/reports/{secret_id}/attachments", secret_token).get_json()
    assert [a["id"] for a in owner["attachments"]] == [shown[secret_id]["id"]]
    assert client.get(shown[secret_id]["url"], secret_token).status_code == 200
    problem(client.get(shown[secret_id]["url"], public_token), 403, "wrong_access_token")
    problem(client.get(f"/api/v1/reports/{secret_id}/attachments", public_token), 403,
            "wrong_access_token")

    # An archived report's files leave the public's view.
    with client.service.engine.begin() as conn:
        conn.execute(storage.reports.update().where(
            storage.reports.c.tracking_id == public_id).values(status="ARCHIVED"))
    assert public_list(public_id) == []
    problem(client.get(shown[public_id]["url"]), 404, "attachment_not_found")
    problem(client.upload(public_id, public_token, photo()), 409, "report_archived")
    problem(client.get("/api/v1/attachments/" + "0" * 32), 404, "attachment_not_found")
    problem(client.get("/api/v1/attachments/..%5Cetc%5Cpasswd"), 404, "attachment_not_found")


# -- the handling agency: signed links ---------------------------------------------------------
@pytest.fixture
def staff_client(sqlite_url, tmp_path):
    with FakeRouting() as routing:
        app = make_app(sqlite_url, tmp_path, routing_port=routing.port,
                       ATTACHMENT_LINK_SECONDS=3600.0)
        try:
            yield Client(app)
        finally:
            close(app)


def test_the_staff_view_carries_signed_links_that_expire(staff_client):
    client = staff_client
    tracking_id, token = client.submit(anonymous=True, confidential=True)
    first = client.stored(tracking_id, token, photo())
    second = client.stored(tracking_id, token, pdf(), content_type="application/pdf")
    ticket = client.get(f"/api/v1/staff/tickets/{tracking_id}", FakeRouting.STAFF_TOKEN)
    assert ticket.status_code == 200, ticket.get_data(as_text=True)
    files = ticket.get_json()["attachments"]
    assert [f["id"] for f in files] == [first["id"], second["id"]]
    for shown in files:
        query = parse_qs(urlsplit(shown["url"]).query)
        assert 3500 < int(query["expires"][0]) - time.time() <= 3600
        served = client.get(shown["url"])  # no token at all
        assert served.status_code == 200 and served.headers["Cache-Control"] == \
            "private, no-store"
        assert served.data == client.get(first["url"] if shown is files[0] else second["url"],
                                         token).data
    assert nothing_identifying(ticket.data)
    problem(client.get(f"/api/v1/staff/tickets/{tracking_id}"), 401, "unauthenticated")

    # Expired: 410. Changed expiry, subject or signature: 403.
    signer, attachment = client.service, first["id"]
    past = signer.signed_query(FILE_PURPOSE, attachment, expires=1_000_000_000)
    problem(client.get(f"/api/v1/attachments/{attachment}", query_string=past), 410,
            "link_expired")
    query = {k: v[0] for k, v in parse_qs(urlsplit(files[0]["url"]).query).items()}
    problem(client.get(f"/api/v1/attachments/{attachment}", query_string={
        **query, "expires": str(int(query["expires"]) + 86400)}), 403, "invalid_link")
    problem(client.get(f"/api/v1/attachments/{second['id']}", query_string=query), 403,
            "invalid_link")
    tampered = query["signature"][:-1] + ("0" if query["signature"][-1] != "0" else "1")
    problem(client.get(f"/api/v1/attachments/{attachment}", query_string={
        **query, "signature": tampered}), 403, "invalid_link")
    problem(client.get(f"/api/v1/attachments/{attachment}",
                       query_string={"expires": query["expires"]}), 403, "invalid_link")


def test_the_webhooks_link_opens_the_list_with_links_that_end_with_it(staff_client):
    client = staff_client
    tracking_id, token = client.submit(anonymous=True)
    shown = client.stored(tracking_id, token, photo(), keep_location="true")
    payloads.configure_attachment_links(LinkSigner(SECRET.encode()), "https://lapor.example",
                                        seconds=600)
    try:
        link = payloads.attachments_link(tracking_id)
    finally:
        payloads.configure_attachment_links(None, "")
    url = urlsplit(link["url"])
    assert (url.scheme, url.netloc) == ("https", "lapor.example")
    listed = client.get(f"{url.path}?{url.query}")
    assert listed.status_code == 200, listed.get_data(as_text=True)
    (entry,) = listed.get_json()["attachments"]
    assert entry["id"] == shown["id"] and entry["location_kept"] is False
    assert parse_qs(urlsplit(entry["url"]).query)["expires"] == \
        parse_qs(url.query)["expires"], "a file link lasts no longer than the list's"
    assert client.get(entry["url"]).status_code == 200
    # The list's link does not open another report's list.
    other, _ = client.submit()
    problem(client.get(f"/api/v1/reports/{other}/attachments?{url.query}"), 403,
            "invalid_link")


def test_without_a_link_secret_there_are_no_signed_links(sqlite_url, tmp_path):
    with FakeRouting() as routing:
        app = make_app(sqlite_url, tmp_path, routing_port=routing.port,
                       ATTACHMENT_LINK_SECRET="")
        try:
            client = Client(app)
            tracking_id, token = client.submit()
            shown = client.stored(tracking_id, token, photo())
            ticket = client.get(f"/api/v1/staff/tickets/{tracking_id}",
                                FakeRouting.STAFF_TOKEN).get_json()
            assert [(a["id"], a["url"]) for a in ticket["attachments"]] == [(shown["id"], None)]
            forged = LinkSigner(SECRET.encode()).query(FILE_PURPOSE, shown["id"], 60)
            problem(client.get(shown["url"], query_string=forged), 403, "invalid_link")
            ready = client.get("/readyz").get_json()["checks"]["attachments"]
            assert ready["signed_links"] is False
        finally:
            close(app)


# -- S3 ------------------------------------------------------------------------------------------
def test_files_go_to_s3_compatible_storage_when_configured(sqlite_url, tmp_path, monkeypatch):
    import boto3
    from moto.server import ThreadedMotoServer

    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="lapor-files")
        app = make_app(sqlite_url, tmp_path, ATTACHMENTS_S3_BUCKET="lapor-files",
                       ATTACHMENTS_S3_ENDPOINT=endpoint)
        try:
            client = Client(app)
            tracking_id, token = client.submit()
            shown = client.stored(tracking_id, token, photo(), keep_location="true")
            keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="lapor-files")["Contents"])
            assert keys == [f"attachments/{shown['id']}", f"attachments/{shown['id']}.public"]
            stored = s3.get_object(Bucket="lapor-files", Key=keys[0])
            assert stored["ContentType"] == "image/jpeg"
            assert stored["Body"].read() == client.get(shown["url"], token).data
            assert no_metadata(client.get(shown["url"]).data)
            assert client.files_on_disk() == []
            assert client.get("/readyz").get_json()["checks"]["attachments"]["storage"] is True
            s3.delete_object(Bucket="lapor-files", Key=keys[0])
            problem(client.get(shown["url"], token), 404, "attachment_not_found")
        finally:
            close(app)
    finally:
        server.stop()


# -- media URLs ----------------------------------------------------------------------------------
class MediaServer:
    """A real HTTP server on 127.0.0.1 with the files a gateway might point to."""

    def __init__(self):
        self.hits: dict[str, int] = {}
        self.routes = {"/photo.jpg": (200, photo(), "image/jpeg"),
                       "/program.jpg": (200, b"MZ\x90\x00" + b"\x00" * 400, "image/jpeg"),
                       "/huge.png": (200, noise(150), "image/png"),
                       "/gone": (404, b"", "text/plain")}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                path = self.path.split("?", 1)[0]
                outer.hits[path] = outer.hits.get(path, 0) + 1
                if path == "/flaky.jpg" and outer.hits[path] == 1:
                    status, body, kind = 503, b"busy", "text/plain"
                elif path == "/flaky.jpg":
                    status, body, kind = 200, photo("PNG"), "image/png"
                elif path == "/trickle.jpg":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    with contextlib.suppress(OSError):
                        for _ in range(40):  # a byte every 50 ms: never a read timeout
                            self.wfile.write(b"\xff")
                            self.wfile.flush()
                            time.sleep(0.05)
                    return
                elif path == "/moved":
                    self.send_response(302)
                    self.send_header("Location", "/photo.jpg")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                else:
                    status, body, kind = outer.routes.get(path, (404, b"", "text/plain"))
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def media():
    server = MediaServer()
    try:
        yield server
    finally:
        server.close()


def fetches(client: Client) -> dict:
    f = storage.media_fetches
    with client.service.engine.connect() as conn:
        return {row.id: row for row in conn.execute(sa.select(f))}


def enqueue(client: Client, tracking_id: str, url: str) -> None:
    with client.service.engine.begin() as conn:
        attachments.enqueue_media_url(conn, tracking_id, url)


def test_media_urls_are_fetched_checked_and_attached(database_url, tmp_path, media):
    app = make_app(database_url, tmp_path, MEDIA_ALLOW_PRIVATE=True, ATTACHMENT_MAX_BYTES=40_000)
    try:
        client = Client(app)
        tracking_id, token = client.submit(anonymous=True)
        for path in ("/photo.jpg", "/moved", "/program.jpg", "/huge.png", "/gone",
                     "/flaky.jpg"):
            enqueue(client, tracking_id, media.url + path + "?token=gateway-secret")
        enqueue(client, tracking_id, "ftp://127.0.0.1/photo.jpg")
        fetcher = client.service.fetcher
        assert fetcher.run_once() == 5 and fetcher.run_once() == 2
        rows = sorted(fetches(client).values(), key=lambda r: r.id)
        states = [(r.state, r.last_error) for r in rows]
        assert states == [("done", ""), ("done", ""), ("failed", "refused: unsupported_type"),
                          ("failed", "too large"), ("failed", "HTTP 404"),
                          ("pending", "HTTP 503"), ("failed", "not an http(s) URL")]
        assert all(r.url == "" for r in rows if r.state != "pending"), "the URL is forgotten"
        assert rows[5].attempts == 1 and rows[5].next_attempt_at > rows[0].created_at
        listed = client.get(f"/api/v1/reports/{tracking_id}/attachments", token).get_json()
        # The photo and the redirect to it are one file, stored once.
        assert [a["content_type"] for a in listed["attachments"]] == ["image/jpeg"]
        for shown in listed["attachments"]:
            assert no_metadata(client.get(shown["url"], token).data)
        # Not due yet: the retry waits its delay; then it is fetched.
        assert fetcher.run_once() == 0
        with client.service.engine.begin() as conn:
            conn.execute(storage.media_fetches.update().values(
                next_attempt_at=rows[0].created_at).where(
                storage.media_fetches.c.id == rows[5].id))
        assert fetcher.run_once() == 1
        assert fetches(client)[rows[5].id].state == "done"
        assert len(client.rows()) == 2
    finally:
        close(app)


def test_a_media_url_on_a_private_address_is_refused_without_the_test_flag(
        sqlite_url, tmp_path, media):
    app = make_app(sqlite_url, tmp_path, MEDIA_MAX_ATTEMPTS=2)
    try:
        client = Client(app)
        tracking_id, _ = client.submit()
        enqueue(client, tracking_id, media.url + "/photo.jpg")
        enqueue(client, tracking_id, "http://localhost:9/photo.jpg")
        enqueue(client, tracking_id, "http://10.1.2.3/photo.jpg")
        assert client.service.fetcher.run_once() == 3
        assert [(r.state, r.last_error) for r in fetches(client).values()] == [
            ("failed", "address not public")] * 3
        assert media.hits == {} and client.rows() == []
    finally:
        close(app)


def test_a_server_that_trickles_cannot_hold_the_fetcher(sqlite_url, tmp_path, media):
    app = make_app(sqlite_url, tmp_path, MEDIA_ALLOW_PRIVATE=True, MEDIA_TIMEOUT=0.2)
    try:
        client = Client(app)
        tracking_id, _ = client.submit()
        enqueue(client, tracking_id, media.url + "/trickle.jpg")
        assert client.service.fetcher.run_once() == 1
        (row,) = fetches(client).values()
        assert (row.state, row.last_error, row.attempts) == ("pending", "too slow", 1)
    finally:
        close(app)


def test_the_fetcher_runs_supervised_in_the_workers_and_stops_cleanly(
        sqlite_url, tmp_path, media):
    app = make_app(sqlite_url, tmp_path, MEDIA_ALLOW_PRIVATE=True)
    client = Client(app)
    try:
        tracking_id, token = client.submit()
        client.service.start()
        assert wait_for(lambda: client.get("/readyz").get_json()["checks"]["attachments"]
                        ["fetcher"], 5, what="the fetcher to run")
        enqueue(client, tracking_id, media.url + "/photo.jpg")
        wait_for(lambda: client.rows(), 10, what="the media URL to be attached")
        assert client.rows()[0].source == "media_url"
    finally:
        close(app)
    assert not client.service.fetcher.healthy()
    with contextlib.suppress(Exception):
        client.service.engine.dispose()


def test_uploads_count_against_the_reporters_allowance(sqlite_url, tmp_path):
    app = make_app(sqlite_url, tmp_path, RATE_LIMIT_REPORTER="2 per minute")
    try:
        client = Client(app)
        tracking_id, token = client.submit()
        client.stored(tracking_id, token, photo(size=(10, 10)))
        client.stored(tracking_id, token, photo(size=(20, 20)))
        body = problem(client.upload(tracking_id, token, photo(size=(30, 30))), 429,
                       "rate_limited")
        assert "at most 2" in body["detail"]
        assert len(client.rows()) == 2
    finally:
        close(app)
