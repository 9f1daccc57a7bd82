"""Typed errors against SeaweedFS (which enforces SigV4): wrong credentials, missing bucket,
missing key, bad URLs. Every error names the URL (``e.url``) and the S3 error code
(``e.code``) and is also in the message."""

from __future__ import annotations

import os
import pickle
import uuid

import pytest

from fasts3 import (
    S3,
    S3AccessDenied,
    S3Error,
    S3GetObject,
    S3InvalidRange,
    S3NotFound,
    S3URLError,
)

DENIED_CODES = {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied", "403"}


@pytest.fixture(scope="module")
def root(seaweed):
    name = f"t-api-errors-{uuid.uuid4().hex[:10]}"
    seaweed.create_bucket(name)
    client = seaweed.client()
    for i in range(20):
        client.put_object(Bucket=name, Key=f"root/obj{i}", Body=b"%d" % i * 1000)
    yield f"s3://{name}/root"
    try:
        client.delete_bucket(Bucket=name)
    except Exception:  # noqa: BLE001 - best effort
        pass


def _client(seaweed, tmp_path_factory, **session_overrides):
    session = dict(seaweed.session_vars(), **session_overrides)
    return S3(endpoint_url=seaweed.endpoint_url, session_vars=session, progress=False,
              tmproot=str(tmp_path_factory.mktemp("errors")))


@pytest.fixture(scope="module")
def s3(seaweed, root, tmp_path_factory):
    with _client(seaweed, tmp_path_factory) as s3:
        yield s3


@pytest.fixture(scope="module")
def bad_secret(seaweed, root, tmp_path_factory):
    with _client(seaweed, tmp_path_factory, aws_secret_access_key="not-the-secret") as s3:
        yield s3


@pytest.fixture(scope="module")
def bad_key(seaweed, root, tmp_path_factory):
    with _client(seaweed, tmp_path_factory, aws_access_key_id="AKIDNOSUCHKEY0000000") as s3:
        yield s3


def check(err: S3Error, url: str, codes: set[str]) -> None:
    assert err.url == url
    assert err.code in codes
    assert url in str(err) and err.code in str(err)


# -- wrong credentials ---------------------------------------------------------------------
CALLS = {
    "get": lambda s3, u: s3.get(u + "/obj1"),
    "get-range": lambda s3, u: s3.get(S3GetObject(u + "/obj1", 1, 2)),
    "get_many": lambda s3, u: s3.get_many([u + "/obj1", u + "/obj2"]),
    "info": lambda s3, u: s3.info(u + "/obj1"),
    "info_many": lambda s3, u: s3.info_many([u + "/obj1", u + "/obj2"]),
    "put": lambda s3, u: s3.put(u + "/new", b"x"),
    "put_many": lambda s3, u: s3.put_many([(u + "/new", b"x")]),
    "list_paths": lambda s3, u: s3.list_paths([u]),
    "list_recursive": lambda s3, u: s3.list_recursive([u]),
    "get_recursive": lambda s3, u: s3.get_recursive([u + "/"]),
}
URL_OF = {"get": "/obj1", "get-range": "/obj1", "get_many": "/obj1", "info": "/obj1",
          "info_many": "/obj1", "put": "/new", "put_many": "/new", "list_paths": "",
          "list_recursive": "", "get_recursive": "/"}


@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("creds", ["bad_secret", "bad_key"])
def test_wrong_credentials_access_denied(request, root, call, creds):
    s3 = request.getfixturevalue(creds)
    with pytest.raises(S3AccessDenied) as e:
        CALLS[call](s3, root)
    assert isinstance(e.value, PermissionError)
    url = root + URL_OF[call]
    if call.endswith("_many"):  # both fail; the first to fail cancels the other
        url = e.value.url if e.value.url in (root + "/obj1", root + "/obj2") else url
    check(e.value, url, DENIED_CODES)
    assert e.value.status == 403
    if creds == "bad_secret" and not call.startswith("info"):  # HEAD answers carry no body
        assert e.value.code == "SignatureDoesNotMatch"


def test_nothing_written_with_wrong_credentials(s3, bad_secret, root):
    with pytest.raises(S3AccessDenied):
        bad_secret.put(root + "/denied", b"x")
    assert not s3.info(root + "/denied", return_missing=True).exists


# -- missing bucket / key -----------------------------------------------------------------
def test_missing_bucket(s3):
    url = "s3://no-such-bucket-" + uuid.uuid4().hex[:8]
    with pytest.raises(S3NotFound) as e:
        s3.get(url + "/k")
    check(e.value, url + "/k", {"NoSuchBucket"})
    with pytest.raises(S3NotFound) as e:
        s3.list_paths([url + "/p"])
    check(e.value, url + "/p", {"NoSuchBucket"})
    with pytest.raises(S3NotFound) as e:
        s3.list_recursive([url])
    check(e.value, url, {"NoSuchBucket"})
    with pytest.raises(S3NotFound) as e:
        s3.get_recursive([url + "/p"])
    assert e.value.url.startswith(url)
    with pytest.raises(S3NotFound) as e:
        s3.info(url + "/k")
    # a HEAD answer carries no body to say which: named as GET names a missing key
    check(e.value, url + "/k", {"NoSuchKey"})
    # return_missing covers a missing object, not a missing bucket... on GET S3 says which
    assert not s3.get(url + "/k", return_missing=True).exists


def test_missing_key(s3, root):
    with pytest.raises(S3NotFound) as e:
        s3.get(root + "/nope")
    assert isinstance(e.value, FileNotFoundError)
    check(e.value, root + "/nope", {"NoSuchKey"})
    assert e.value.status == 404
    with pytest.raises(S3NotFound) as e:
        s3.get(S3GetObject(root + "/nope", 0, 10))
    check(e.value, root + "/nope", {"NoSuchKey"})
    with pytest.raises(S3NotFound) as e:
        s3.info(root + "/nope")
    check(e.value, root + "/nope", {"NoSuchKey", "NotFound", "404"})


def test_first_failure_in_a_batch_is_raised_and_client_still_works(s3, root):
    keys = [f"{root}/obj{i}" for i in range(20)]
    keys.insert(7, root + "/missing")
    with pytest.raises(S3NotFound) as e:
        s3.get_many(keys)
    check(e.value, root + "/missing", {"NoSuchKey"})
    leftovers = [n for n in os.listdir(s3.tmpdir) if n.endswith(".part")]
    assert leftovers == []  # cancelled downloads leave no partial files
    objs = s3.get_many(keys[:3])
    assert [o.blob for o in objs] == [b"0" * 1000, b"1" * 1000, b"2" * 1000]


def test_invalid_range_names_url(s3, root):
    with pytest.raises(S3InvalidRange) as e:
        s3.get(S3GetObject(root + "/obj1", 10_000, 1))
    check(e.value, root + "/obj1", {"InvalidRange"})
    assert e.value.status == 416


# -- bad URLs ------------------------------------------------------------------------------
def test_bad_urls_fail_before_any_request(seaweed, tmp_path_factory, root):
    with _client(seaweed, tmp_path_factory) as fresh:
        for call in (lambda: fresh.get("relative/key"), lambda: fresh.get("s3://b"),
                     lambda: fresh.info("http://host/x"), lambda: fresh.put("k", b"x"),
                     lambda: fresh.list_paths(["x"]), lambda: fresh.get(root + "/" + "k" * 1025)):
            with pytest.raises(S3URLError) as e:
                call()
            assert isinstance(e.value, ValueError) and e.value.url
        assert fresh._engine.pool is None  # no worker was ever needed
    with pytest.raises(S3URLError):
        S3(s3root="/not/s3", tmproot=str(tmp_path_factory.mktemp("errors")))


def test_errors_pickle_with_their_fields(s3, root):
    with pytest.raises(S3NotFound) as e:
        s3.get(root + "/nope")
    clone = pickle.loads(pickle.dumps(e.value))
    assert type(clone) is S3NotFound
    assert (clone.url, clone.code, clone.status) == (e.value.url, e.value.code, e.value.status)
    assert str(clone) == str(e.value)
