#!/usr/bin/python3
"""A MinIO stand-in for the e2e tier: the S3 API with AWS Signature Version 4 enforced.

MinIO is not packaged in Debian and no container registry can be reached, so
the image runs this program as `minio` (stdlib only, Debian's python3).
`minio server DIR --address HOST:PORT` serves path-style S3 from DIR for the
root credentials, as MinIO does, and is never kinder than MinIO:

- Credentials: MINIO_ROOT_USER / MINIO_ROOT_PASSWORD (or their *_FILE forms;
  `minioadmin` for both when unset, as MinIO). A user shorter than 3 or a
  password shorter than 8 characters stops the server, as MinIO refuses them.
- Every S3 request must be signed with SigV4 (Authorization header or a
  presigned URL) by those credentials: an unknown key is refused with 403
  InvalidAccessKeyId, a wrong signature with 403 SignatureDoesNotMatch, an
  unsigned request with 403 AccessDenied, a request dated more than 15
  minutes off with 403 RequestTimeTooSkewed, an expired presigned URL with
  403 AccessDenied, a body that does not match its signed hash with 400
  XAmzContentSHA256Mismatch, a scope for another region than MINIO_REGION
  (default us-east-1) with 400 AuthorizationHeaderMalformed.
- Operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket,
  GetBucketLocation, ListObjects (v1 and v2, prefix/delimiter), PutObject,
  CopyObject, GetObject (with a single byte Range), HeadObject, DeleteObject.
  Anything else is answered 501 NotImplemented, never a false success.
- /minio/health/live and /minio/health/ready answer 200 without credentials.

Only the S3 API port is served; the console (--console-address) is not.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import hmac
import json
import os
import re
import shutil
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.sax.saxutils import escape

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED = "UNSIGNED-PAYLOAD"
MAX_SKEW = dt.timedelta(minutes=15)
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
META_FOLDER = ".minio.sys"


class S3Error(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


MESSAGES = {
    "AccessDenied": "Access Denied.",
    "InvalidAccessKeyId": "The Access Key Id you provided does not exist in our records.",
    "SignatureDoesNotMatch": "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
    "RequestTimeTooSkewed": "The difference between the request time and the server's time is too large.",
    "NoSuchBucket": "The specified bucket does not exist",
    "NoSuchKey": "The specified key does not exist.",
    "BucketAlreadyOwnedByYou": "Your previous request to create the named bucket succeeded and you already own it.",
    "BucketNotEmpty": "The bucket you tried to delete is not empty",
    "InvalidBucketName": "The specified bucket is not valid.",
    "NotImplemented": "A header you provided implies functionality that is not implemented",
    "XAmzContentSHA256Mismatch": "The provided 'x-amz-content-sha256' header does not match what was computed.",
    "AuthorizationHeaderMalformed": "The authorization header is malformed; the region is wrong.",
    "InvalidRange": "The requested range is not satisfiable",
}


def fail(status: int, code: str) -> S3Error:
    return S3Error(status, code, MESSAGES[code])


# --- Credentials ------------------------------------------------------------------------------


def _setting(name: str, default: str) -> str:
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return os.environ.get(name, default)


def root_credentials() -> tuple[str, str]:
    user = _setting("MINIO_ROOT_USER", "minioadmin")
    password = _setting("MINIO_ROOT_PASSWORD", "minioadmin")
    if len(user) < 3 or len(password) < 8:
        raise SystemExit(
            "ERROR Unable to validate credentials inherited from the shell environment: Invalid credentials\n"
            "      > Please provide correct credentials\n"
            "      HINT: Access key length should be at least 3, and secret key length at least 8 characters"
        )
    return user, password


# --- Signature Version 4 ------------------------------------------------------------------------


def _uri_encode(text: str, safe: str) -> str:
    return quote(text, safe=safe)


def canonical_query(pairs: list[tuple[str, str]]) -> str:
    encoded = sorted((_uri_encode(key, "-_.~"), _uri_encode(value, "-_.~")) for key, value in pairs)
    return "&".join(f"{key}={value}" for key, value in encoded)


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _parse_authorization(header: str) -> dict[str, str]:
    if not header.startswith(ALGORITHM + " "):
        raise fail(400, "AuthorizationHeaderMalformed")
    fields = {}
    for part in header[len(ALGORITHM) + 1 :].split(","):
        key, _, value = part.strip().partition("=")
        fields[key] = value
    if not {"Credential", "SignedHeaders", "Signature"} <= fields.keys():
        raise fail(400, "AuthorizationHeaderMalformed")
    return fields


def verify(
    method: str,
    raw_path: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
    credentials: tuple[str, str],
    region: str,
    now: dt.datetime,
) -> None:
    """Raise S3Error unless the request is signed with SigV4 by `credentials` (header or presigned URL)."""
    query_keys = {key for key, _ in query}
    presigned = "X-Amz-Signature" in query_keys
    authorization = headers.get("authorization")
    if authorization is None and not presigned:
        raise fail(403, "AccessDenied")
    if presigned:
        params = dict(query)
        if params.get("X-Amz-Algorithm") != ALGORITHM:
            raise fail(400, "AuthorizationHeaderMalformed")
        credential, signed_headers, signature = (
            params.get("X-Amz-Credential", ""),
            params.get("X-Amz-SignedHeaders", ""),
            params["X-Amz-Signature"],
        )
        amz_date = params.get("X-Amz-Date", "")
        payload_hash = UNSIGNED
        signed_query = [(key, value) for key, value in query if key != "X-Amz-Signature"]
    else:
        assert authorization is not None
        fields = _parse_authorization(authorization)
        credential, signed_headers, signature = fields["Credential"], fields["SignedHeaders"], fields["Signature"]
        amz_date = headers.get("x-amz-date", "")
        payload_hash = headers.get("x-amz-content-sha256", "")
        if not payload_hash:
            raise fail(400, "XAmzContentSHA256Mismatch")
        signed_query = query
    access_key, _, scope = credential.partition("/")
    scope_parts = scope.split("/")
    if len(scope_parts) != 4 or scope_parts[2] != "s3" or scope_parts[3] != "aws4_request":
        raise fail(400, "AuthorizationHeaderMalformed")
    if not hmac.compare_digest(access_key.encode(), credentials[0].encode()):
        raise fail(403, "InvalidAccessKeyId")
    if scope_parts[1] != region:
        raise fail(400, "AuthorizationHeaderMalformed")
    try:
        signed_at = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise fail(403, "AccessDenied") from None
    if scope_parts[0] != amz_date[:8]:
        raise fail(403, "SignatureDoesNotMatch")
    if presigned:
        expires = int(dict(query).get("X-Amz-Expires", "0") or 0)
        if not 0 < expires <= 604800 or now > signed_at + dt.timedelta(seconds=expires) or signed_at - now > MAX_SKEW:
            raise fail(403, "AccessDenied")
    elif abs(now - signed_at) > MAX_SKEW:
        raise fail(403, "RequestTimeTooSkewed")
    names = signed_headers.split(";")
    if "host" not in names:
        raise fail(403, "SignatureDoesNotMatch")
    canonical_headers = "".join(f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in names)
    canonical_request = "\n".join(
        [method, _uri_encode(unquote(raw_path), "/-_.~"), canonical_query(signed_query), canonical_headers, signed_headers, payload_hash]
    )
    string_to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()])
    expected = hmac.new(signing_key(credentials[1], scope_parts[0], region, "s3"), string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise fail(403, "SignatureDoesNotMatch")
    if payload_hash != UNSIGNED:
        if payload_hash.startswith("STREAMING-"):
            raise fail(501, "NotImplemented")
        if not hmac.compare_digest(hashlib.sha256(body).hexdigest(), payload_hash):
            raise fail(400, "XAmzContentSHA256Mismatch")


# --- Storage ----------------------------------------------------------------------------------------


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.meta = root / META_FOLDER / "meta"
        self.meta.mkdir(parents=True, exist_ok=True)

    def bucket(self, name: str) -> Path:
        if not BUCKET_NAME.match(name) or name == META_FOLDER:
            raise fail(400, "InvalidBucketName")
        return self.root / name

    def existing_bucket(self, name: str) -> Path:
        path = self.bucket(name)
        if not path.is_dir():
            raise fail(404, "NoSuchBucket")
        return path

    def object_paths(self, bucket: str, key: str) -> tuple[Path, Path]:
        parts = key.split("/")
        if not key or any(part in {"", ".", ".."} for part in parts[:-1]) or parts[-1] in {"", ".", ".."}:
            raise fail(400, "InvalidBucketName" if not key else "NoSuchKey")
        return self.existing_bucket(bucket).joinpath(*parts), self.meta.joinpath(bucket, *parts[:-1], parts[-1] + ".json")

    def buckets(self) -> list[Path]:
        return sorted(path for path in self.root.iterdir() if path.is_dir() and path.name != META_FOLDER)

    def keys(self, bucket: str) -> list[str]:
        root = self.existing_bucket(bucket)
        return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())

    def read_meta(self, bucket: str, key: str) -> dict[str, object]:
        data, meta = self.object_paths(bucket, key)
        if not data.is_file():
            raise fail(404, "NoSuchKey")
        stored: dict[str, object] = json.loads(meta.read_text()) if meta.is_file() else {}
        stored.setdefault("size", data.stat().st_size)
        stored.setdefault("mtime", data.stat().st_mtime)
        return stored


def _xml(root: str, inner: str) -> bytes:
    namespace = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"' if root != "Error" else ""
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}{namespace}>{inner}</{root}>'.encode()


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class S3Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "MinIO"
    sys_version = ""
    store: Store
    credentials: tuple[str, str]
    region: str

    def log_message(self, format: str, *args: object) -> None:
        print("API: " + format % args, flush=True)

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, content_type: str = "application/xml") -> None:
        extra = dict(headers or {})
        length = extra.pop("Content-Length", str(len(body)))
        self.send_response(status)
        self.send_header("X-Amz-Request-Id", uuid.uuid4().hex[:16].upper())
        if body or status not in {204, 304}:
            self.send_header("Content-Type", content_type)
        for key, value in extra.items():
            self.send_header(key, value)
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _error(self, error: S3Error, resource: str) -> None:
        inner = f"<Code>{error.code}</Code><Message>{escape(error.message)}</Message><Resource>{escape(resource)}</Resource><RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId>"
        self._send(error.status, _xml("Error", inner))

    def _handle(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(length) if length else b""
        if split.path in {"/minio/health/live", "/minio/health/ready", "/minio/health/cluster"}:
            self._send(200, content_type="text/plain")
            return
        query = parse_qsl(split.query, keep_blank_values=True)
        headers = {key.lower(): value for key, value in self.headers.items()}
        try:
            verify(self.command, split.path, query, headers, body, self.credentials, self.region, dt.datetime.now(dt.UTC))
            self._operation(unquote(split.path), dict(query), headers, body)
        except S3Error as error:
            self._error(error, unquote(split.path))

    do_GET = _handle
    do_PUT = _handle
    do_HEAD = _handle
    do_DELETE = _handle
    do_POST = _handle

    def _operation(self, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> None:
        bucket, _, key = path.lstrip("/").partition("/")
        method = self.command
        if not bucket:
            if method != "GET":
                raise fail(501, "NotImplemented")
            entries = "".join(
                f"<Bucket><Name>{escape(item.name)}</Name><CreationDate>{_iso(item.stat().st_mtime)}</CreationDate></Bucket>"
                for item in self.store.buckets()
            )
            self._send(
                200,
                _xml(
                    "ListAllMyBucketsResult", f"<Owner><ID>minio</ID><DisplayName>minio</DisplayName></Owner><Buckets>{entries}</Buckets>"
                ),
            )
            return
        if not key:
            self._bucket_operation(method, bucket, query)
            return
        if set(query) - {"versionId", "x-id"} - {name for name in query if name.startswith("X-Amz-") or name.startswith("response-")}:
            raise fail(501, "NotImplemented")
        data, meta = self.store.object_paths(bucket, key)
        if method == "PUT":
            source = headers.get("x-amz-copy-source")
            if source:
                source_bucket, _, source_key = unquote(source).lstrip("/").partition("/")
                source_data, _ = self.store.object_paths(source_bucket, source_key)
                stored = self.store.read_meta(source_bucket, source_key)
                body = source_data.read_bytes()
            else:
                stored = {"content_type": headers.get("content-type", "binary/octet-stream")}
            stored["etag"] = hashlib.md5(body).hexdigest()
            stored["meta"] = stored.get("meta") or {name: value for name, value in headers.items() if name.startswith("x-amz-meta-")}
            data.parent.mkdir(parents=True, exist_ok=True)
            meta.parent.mkdir(parents=True, exist_ok=True)
            data.write_bytes(body)
            meta.write_text(json.dumps(stored))
            if source:
                inner = f"<LastModified>{_iso(data.stat().st_mtime)}</LastModified><ETag>&quot;{stored['etag']}&quot;</ETag>"
                self._send(200, _xml("CopyObjectResult", inner))
            else:
                self._send(200, headers={"ETag": f'"{stored["etag"]}"'})
        elif method in {"GET", "HEAD"}:
            stored = self.store.read_meta(bucket, key)
            content = data.read_bytes() if method == "GET" else b""
            size = int(str(stored["size"]))
            response_headers = {
                "ETag": f'"{stored.get("etag", "")}"',
                "Last-Modified": email.utils.formatdate(float(str(stored["mtime"])), usegmt=True),
                "Accept-Ranges": "bytes",
                **{name: str(value) for name, value in dict(stored.get("meta") or {}).items()},  # type: ignore[call-overload]
            }
            status = 200
            ranged = re.fullmatch(r"bytes=(\d*)-(\d*)", headers.get("range", ""))
            if ranged and (ranged.group(1) or ranged.group(2)):
                start = int(ranged.group(1)) if ranged.group(1) else max(size - int(ranged.group(2)), 0)
                end = min(int(ranged.group(2)), size - 1) if ranged.group(1) and ranged.group(2) else size - 1
                if start >= size or start > end:
                    raise fail(416, "InvalidRange")
                content = content[start : end + 1] if method == "GET" else b""
                response_headers["Content-Range"] = f"bytes {start}-{end}/{size}"
                status, size = 206, end - start + 1
            if method == "HEAD":
                response_headers["Content-Length"] = str(size)
            self._send(status, content, response_headers, str(stored.get("content_type", "binary/octet-stream")))
        elif method == "DELETE":
            data.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            self._send(204)
        else:
            raise fail(501, "NotImplemented")

    def _bucket_operation(self, method: str, bucket: str, query: dict[str, str]) -> None:
        path = self.store.bucket(bucket)
        signed = {name for name in query if name.startswith("X-Amz-")}
        if method == "PUT" and not set(query) - signed:
            if path.is_dir():
                raise fail(409, "BucketAlreadyOwnedByYou")
            path.mkdir()
            self._send(200, headers={"Location": f"/{bucket}"})
        elif method == "HEAD" and not set(query) - signed:
            self.store.existing_bucket(bucket)
            self._send(200)
        elif method == "DELETE" and not set(query) - signed:
            if self.store.keys(bucket):
                raise fail(409, "BucketNotEmpty")
            shutil.rmtree(path)
            shutil.rmtree(self.store.meta / bucket, ignore_errors=True)
            self._send(204)
        elif method == "GET" and "location" in query:
            self.store.existing_bucket(bucket)
            self._send(200, _xml("LocationConstraint", ""))
        elif method == "GET" and not set(query) - signed - {
            "list-type",
            "prefix",
            "delimiter",
            "max-keys",
            "encoding-type",
            "marker",
            "continuation-token",
            "start-after",
            "fetch-owner",
        }:
            self._list(bucket, query)
        else:
            raise fail(501, "NotImplemented")

    def _list(self, bucket: str, query: dict[str, str]) -> None:
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        max_keys = int(query.get("max-keys", "1000") or 1000)
        after = query.get("start-after", "") or query.get("marker", "") or query.get("continuation-token", "")
        contents, prefixes = [], []
        for key in self.store.keys(bucket):
            if not key.startswith(prefix) or (after and key <= after):
                continue
            if delimiter and delimiter in key[len(prefix) :]:
                common = key[: len(prefix) + key[len(prefix) :].index(delimiter) + len(delimiter)]
                if common not in prefixes:
                    prefixes.append(common)
                continue
            contents.append(key)
        truncated = len(contents) > max_keys
        contents = contents[:max_keys]
        items = []
        for key in contents:
            stored = self.store.read_meta(bucket, key)
            items.append(
                f"<Contents><Key>{escape(key)}</Key><LastModified>{_iso(float(str(stored['mtime'])))}</LastModified>"
                f"<ETag>&quot;{stored.get('etag', '')}&quot;</ETag><Size>{stored['size']}</Size><StorageClass>STANDARD</StorageClass></Contents>"
            )
        inner = f"<Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix><MaxKeys>{max_keys}</MaxKeys>"
        inner += f"<Delimiter>{escape(delimiter)}</Delimiter>" if delimiter else ""
        inner += f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"
        if query.get("list-type") == "2":
            inner += f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount>"
            if truncated:
                inner += f"<NextContinuationToken>{escape(contents[-1])}</NextContinuationToken>"
        elif truncated:
            inner += f"<NextMarker>{escape(contents[-1])}</NextMarker>"
        inner += "".join(items) + "".join(f"<CommonPrefixes><Prefix>{escape(item)}</Prefix></CommonPrefixes>" for item in prefixes)
        self._send(200, _xml("ListBucketResult", inner))


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "server":
        print("minio (stand-in): only `minio server DIR [--address HOST:PORT]` is served", file=sys.stderr)
        return 1
    address = ":9000"
    folders = []
    arguments = iter(argv[1:])
    for argument in arguments:
        if argument in {"--address", "--console-address"}:
            value = next(arguments, "")
            if argument == "--address":
                address = value
        elif argument.startswith("--address="):
            address = argument.split("=", 1)[1]
        elif not argument.startswith("--"):
            folders.append(argument)
    if len(folders) != 1:
        print("minio (stand-in): exactly one data folder is served", file=sys.stderr)
        return 1
    host, _, port = address.rpartition(":")
    handler = type(
        "ConfiguredS3Handler",
        (S3Handler,),
        {"store": Store(Path(folders[0])), "credentials": root_credentials(), "region": os.environ.get("MINIO_REGION", "us-east-1")},
    )
    server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), handler)
    print(f"S3-API: http://{host or '0.0.0.0'}:{port} (omnigen e2e stand-in)", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
