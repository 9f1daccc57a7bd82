"""fasts3.engine.s3xml: listings decode URL-encoded keys only when the server says it encoded
them (``EncodingType=url``), form style as S3 writes them; continuation tokens are opaque.
Pure unit tests: no server (the servers are exercised in test_metaflow_compat.py)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from fasts3.engine import s3xml

NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def _listing(keys: list[str], prefixes: list[str], encoding: str | None, token: str | None):
    contents = "".join(f"<Contents><Key>{k}</Key><Size>3</Size><ETag>&quot;e&quot;</ETag>"
                       f"<LastModified>2024-01-02T03:04:05.000Z</LastModified></Contents>"
                       for k in keys)
    common = "".join(f"<CommonPrefixes><Prefix>{p}</Prefix></CommonPrefixes>" for p in prefixes)
    enc = f"<EncodingType>{encoding}</EncodingType>" if encoding else ""
    nxt = (f"<IsTruncated>true</IsTruncated><NextContinuationToken>{token}"
           "</NextContinuationToken>") if token else "<IsTruncated>false</IsTruncated>"
    return f"<ListBucketResult {NS}>{nxt}{contents}{common}{enc}</ListBucketResult>".encode()


def test_url_encoded_listing_is_decoded():
    page = s3xml.parse_list(_listing(["p/%01%C3%BF", "p/a+b%2Bc", "p/d%25e"], ["p/s%20p/"],
                                     "url", "tok%2B+/="))
    assert [o[0] for o in page["objects"]] == ["p/\x01\xff", "p/a b+c", "p/d%e"]
    assert page["prefixes"] == ["p/s p/"]
    assert page["next"] == "tok%2B+/="  # passed back as received, as botocore does
    assert page["objects"][0][1:] == (3, 1704164645, "e")


def test_listing_without_encoding_type_is_taken_literally():
    """A server that ignores encoding-type sends keys as they are (and no EncodingType)."""
    page = s3xml.parse_list(_listing(["p/a+b%2Bc"], ["p/x%20/"], None, None))
    assert [o[0] for o in page["objects"]] == ["p/a+b%2Bc"]
    assert page["prefixes"] == ["p/x%20/"] and page["next"] is None


def test_raw_control_characters_are_unparseable():
    """Why listings ask for encoding-type=url: XML 1.0 cannot carry these keys."""
    with pytest.raises(ET.ParseError):
        s3xml.parse_list(_listing(["p/\x01"], [], None, None))


def test_multipart_upload_listing_is_decoded():
    body = (f"<ListMultipartUploadsResult {NS}><IsTruncated>true</IsTruncated>"
            "<NextKeyMarker>k%01+x</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker>"
            "<EncodingType>url</EncodingType><Upload><Key>k%01+x</Key><UploadId>u1</UploadId>"
            "<Initiated>2024-01-02T03:04:05.000Z</Initiated></Upload>"
            "</ListMultipartUploadsResult>").encode()
    page = s3xml.parse_uploads(body)
    assert page["uploads"] == [("k\x01 x", "u1", 1704164645)]
    assert page["next"] == ("k\x01 x", "u2")
