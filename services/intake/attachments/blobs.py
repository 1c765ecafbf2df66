"""Where attachment files live: a local directory by default, an S3-compatible bucket when
INTAKE_ATTACHMENTS_S3_BUCKET is set (boto3, with timeouts and its standard retries). Files are
named by a random key; a client's file name never reaches the disk or the bucket."""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

KEY = re.compile(r"^[a-z0-9]{16,64}(\.public)?$")
CHECK_EVERY = 15.0  # seconds: readiness is polled often; the bucket is asked at most this often


class BlobNotFound(Exception):
    pass


def _checked(key: str) -> str:
    if not KEY.fullmatch(key):
        raise ValueError("not a blob key")
    return key


class LocalBlobs:
    """One file per key under `root`, written whole (temporary file, then renamed)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def describe(self) -> str:
        return f"local directory {self.root}"

    def _path(self, key: str) -> Path:
        key = _checked(key)
        return self.root / key[:2] / key

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def check(self) -> bool:
        """Writable, or creatable with the first file."""
        path = self.root
        while not path.exists() and path.parent != path:
            path = path.parent
        return path.is_dir() and os.access(path, os.W_OK)


class S3Blobs:
    """Objects `<prefix><key>` in one bucket of S3 or an S3-compatible store (MinIO, Ceph)."""

    def __init__(self, bucket: str, *, endpoint_url: str | None = None, prefix: str = "",
                 region: str | None = None, timeout: float = 10.0):
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix
        self._checked: tuple[float, bool] | None = None
        self.client = boto3.client(
            "s3", endpoint_url=endpoint_url or None, region_name=region or None,
            config=Config(connect_timeout=timeout, read_timeout=timeout,
                          retries={"mode": "standard", "max_attempts": 3},
                          s3={"addressing_style": "path"} if endpoint_url else None))

    def describe(self) -> str:
        return f"S3 bucket {self.bucket}"

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + _checked(key), Body=data,
                               ContentType=content_type)

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.prefix + _checked(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise BlobNotFound(key) from None
            raise
        with answer["Body"] as body:
            return body.read()

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + _checked(key))

    def check(self) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        if self._checked is not None and time.monotonic() - self._checked[0] < CHECK_EVERY:
            return self._checked[1]
        try:
            self.client.head_bucket(Bucket=self.bucket)
            reachable = True
        except (BotoCoreError, ClientError):
            reachable = False
        self._checked = (time.monotonic(), reachable)
        return reachable
