"""Answer rewriting for ``faultproxy.py``: the faults that change how a response is framed or
what a request asks for, the region redirect, and the TLS material for an HTTPS proxy.

* :func:`rechunk` — the same body, sent with ``Transfer-Encoding: chunked`` (no length).
* :func:`unframe` — the same body with neither length nor chunking, ended by closing the
  connection (``Connection: close``).
* :func:`truncate_listing` — a ListObjectsV2 page rewritten to ``IsTruncated=true`` without
  a ``NextContinuationToken``.
* :func:`strip_range` — the request's ``Range`` header removed (SigV4 does not sign it), so
  the server answers 200 with the whole object.
* :func:`redirect_answer` — ``301 PermanentRedirect`` with ``x-amz-bucket-region`` for a
  request to a bucket whose region its ``Authorization`` scope does not name (SeaweedFS
  accepts any region, so the proxy checks the scope itself).
* :func:`make_certs` — a CA and a ``localhost``/``127.0.0.1`` server certificate signed by it,
  made at test time with the ``cryptography`` package.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re

_AUTH_REGION = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/s3/aws4_request")


def _set_header(head: bytes, name: str, value: str | None) -> bytes:
    """``head`` with every ``name`` header removed and, if ``value``, one added at the end."""
    lines = head.decode("latin-1").split("\r\n")
    first, rest = lines[0], [ln for ln in lines[1:] if ln]
    rest = [ln for ln in rest if ln.split(":", 1)[0].strip().lower() != name.lower()]
    if value is not None:
        rest.append(f"{name}: {value}")
    return ("\r\n".join([first, *rest]) + "\r\n\r\n").encode("latin-1")


def dechunk(raw: bytes) -> bytes:
    """The payload of a chunked body (framing and trailers removed)."""
    out, pos = [], 0
    while True:
        end = raw.index(b"\r\n", pos)
        size = int(raw[pos:end].split(b";", 1)[0] or b"0", 16)
        if size == 0:
            return b"".join(out)
        out.append(raw[end + 2:end + 2 + size])
        pos = end + 2 + size + 2


def payload(headers: dict[str, str], body: bytes) -> bytes:
    """The body's bytes whatever the upstream's framing."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return dechunk(body)
    return body


def rechunk(head: bytes, headers: dict[str, str], body: bytes, method: str,
            chunk: int = 65536) -> bytes:
    """The whole answer re-framed as chunks of ``chunk`` bytes (a HEAD answer: headers only,
    its Content-Length replaced by ``Transfer-Encoding: chunked``)."""
    data = payload(headers, body)
    head = _set_header(_set_header(head, "Content-Length", None), "Transfer-Encoding", "chunked")
    if method == "HEAD":
        return head
    parts = [f"{len(data[i:i + chunk]):x}\r\n".encode() + data[i:i + chunk] + b"\r\n"
             for i in range(0, len(data), chunk)]
    return head + b"".join(parts) + b"0\r\n\r\n"


def unframe(head: bytes, headers: dict[str, str], body: bytes, method: str) -> bytes:
    """The answer with no Content-Length and no chunking, to be ended by a close."""
    head = _set_header(_set_header(head, "Content-Length", None), "Transfer-Encoding", None)
    head = _set_header(head, "Connection", "close")
    return head if method == "HEAD" else head + payload(headers, body)


def truncate_listing(head: bytes, headers: dict[str, str], body: bytes) -> bytes | None:
    """A ListObjectsV2 answer claiming more pages but giving no token; None if ``body`` is
    not a listing."""
    data = payload(headers, body)
    if b"<ListBucketResult" not in data:
        return None
    data = re.sub(rb"<NextContinuationToken>.*?</NextContinuationToken>", b"", data, flags=re.S)
    if b"<IsTruncated>" in data:
        data = re.sub(rb"<IsTruncated>\w+</IsTruncated>", b"<IsTruncated>true</IsTruncated>",
                      data)
    else:
        data = data.replace(b"</ListBucketResult>",
                            b"<IsTruncated>true</IsTruncated></ListBucketResult>")
    head = _set_header(_set_header(head, "Transfer-Encoding", None), "Content-Length",
                       str(len(data)))
    return head + data


def strip_range(head: bytes) -> bytes:
    """The request head without its ``Range`` header."""
    return _set_header(head, "Range", None)


def redirect_answer(bucket: str, headers: dict[str, str], regions: dict[str, str],
                    method: str) -> bytes | None:
    """A 301 PermanentRedirect naming ``regions[bucket]`` if the request is not signed for
    that region (None: forward it)."""
    region = regions.get(bucket)
    if region is None:
        return None
    m = _AUTH_REGION.search(headers.get("authorization", ""))
    if m and m.group(1) == region:
        return None
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PermanentRedirect</Code>'
            f"<Message>The bucket you are attempting to access must be addressed using the "
            f"specified endpoint.</Message><Bucket>{bucket}</Bucket>"
            f"<Endpoint>{bucket}.s3.{region}.amazonaws.com</Endpoint></Error>").encode()
    head = (f"HTTP/1.1 301 Moved Permanently\r\nContent-Type: application/xml\r\n"
            f"x-amz-bucket-region: {region}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    return head if method == "HEAD" else head + body


def make_certs(directory: str) -> dict[str, str]:
    """Write a fresh CA and a server certificate for ``localhost``/``127.0.0.1`` into
    ``directory``; return the paths: ``ca`` (PEM), ``cert`` and ``key`` (the server's)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fasts3 test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {n: os.path.join(directory, f"{n}.pem") for n in ("ca", "cert", "key")}
    with open(paths["ca"], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths["cert"], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths["key"], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return paths
