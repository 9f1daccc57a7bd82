"""Shared fixtures: embedded S3 servers (started lazily, once per session) and fresh buckets.

* ``seaweed`` / ``moto_server``: a :class:`fasts3.local.LocalS3`, stopped at session end.
* ``bucket`` / ``moto_bucket``: a fresh, uniquely named bucket for one test.
* ``s3root``: ``s3://<bucket>/root``; ``s3_kwargs`` / ``moto_kwargs``: keyword arguments for
  ``fasts3.S3(...)`` that point it at the server.

No AWS configuration of the developer's machine reaches the tests (see ``_isolated_aws_env``).

Randomness is replayable: the session draws a seed (or takes ``FASTS3_TEST_SEED``), prints it
at the end and in every failure's report, and seeds Python's ``random`` with it and the test's
id before every test. ``FASTS3_TEST_SEED=<seed> pytest <id>`` then replays what a failing test
drew from ``random`` and the fault proxy's sequence of draws (``faultproxy.FaultProxy`` takes
its seed from ``random`` unless given one); which request gets which draw still follows the
order in which concurrent requests reach the proxy, and data made with ``os.urandom`` differs.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator

import pytest
from buckets import bucket_name, scratch_bucket

from fasts3.local import LocalS3, start_moto, start_seaweedfs

_HIDDEN_PREFIXES = ("AWS_", "METAFLOW_", "FASTS3_DATATOOLS_")
SEED = int(os.environ.get("FASTS3_TEST_SEED") or random.SystemRandom().randrange(1, 1 << 30))


def pytest_report_header() -> str:
    return f"fasts3 random seed: {SEED} (replay a failure: FASTS3_TEST_SEED={SEED})"


def pytest_terminal_summary(terminalreporter) -> None:
    terminalreporter.write_line(pytest_report_header())


def pytest_runtest_setup(item: pytest.Item) -> None:
    random.seed(f"{SEED}:{item.nodeid}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed:
        report.sections.append(("random seed", f"FASTS3_TEST_SEED={SEED} pytest '{item.nodeid}'"))
    return report


@pytest.fixture(scope="session", autouse=True)
def _isolated_aws_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Hide the developer's AWS profiles, credentials and endpoints, and Metaflow's settings.

    Config and credential files point at paths that do not exist, and instance metadata is
    disabled (botocore would otherwise probe 169.254.169.254 for credentials).
    """
    missing = tmp_path_factory.mktemp("no-aws") / "does-not-exist"
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(_HIDDEN_PREFIXES):
                mp.delenv(name)
        mp.setenv("AWS_CONFIG_FILE", str(missing / "config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(missing / "credentials"))
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3]:
    """An embedded SeaweedFS (SigV4 enforced) shared by the whole session.

    Its data dir (with ``server.log``) is under pytest's basetemp, kept for post-mortems.
    """
    srv = start_seaweedfs(data_dir=str(tmp_path_factory.mktemp("seaweed")))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[LocalS3]:
    """An in-memory moto S3 server shared by the whole session (any key pair is accepted)."""
    srv = start_moto()
    yield srv
    srv.stop()


def _slug(request: pytest.FixtureRequest) -> str:
    """The test's name as a bucket-name fragment (easy to trace a bucket to its test)."""
    return re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")


@pytest.fixture
def bucket(seaweed: LocalS3, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh bucket on ``seaweed``; deleted (with its objects) after the test.

    SeaweedFS gives every bucket its own volume, so deleting keeps long sessions bounded.
    """
    with scratch_bucket(seaweed, _slug(request)) as name:
        yield name


@pytest.fixture
def moto_bucket(moto_server: LocalS3, request: pytest.FixtureRequest) -> str:
    """A fresh bucket on ``moto_server`` (in memory; dropped with the server)."""
    name = bucket_name(_slug(request))
    moto_server.create_bucket(name)
    return name


@pytest.fixture
def s3root(seaweed: LocalS3, bucket: str) -> str:
    """``s3://<fresh bucket>/root`` on ``seaweed``."""
    return f"s3://{bucket}/root"


@pytest.fixture
def s3_kwargs(seaweed: LocalS3) -> dict:
    """Keyword arguments for ``fasts3.S3(...)`` pointing at ``seaweed``, progress bars off."""
    return dict(endpoint_url=seaweed.endpoint_url, session_vars=seaweed.session_vars(),
                progress=False)


@pytest.fixture
def moto_kwargs(moto_server: LocalS3) -> dict:
    """Keyword arguments for ``fasts3.S3(...)`` pointing at ``moto_server``, progress off."""
    return dict(endpoint_url=moto_server.endpoint_url, session_vars=moto_server.session_vars(),
                progress=False)


@pytest.fixture
def proxy(seaweed: LocalS3) -> Iterator[object]:
    """A fault-injecting proxy (``tests/faultproxy.py``) in front of ``seaweed``, no faults set
    yet; a module may override it (``via`` then uses the override)."""
    from faultproxy import FaultProxy

    with FaultProxy(seaweed.endpoint_url) as p:
        yield p


@pytest.fixture
def via(proxy, seaweed: LocalS3) -> dict:
    """``S3(...)`` keyword arguments that send every request through ``proxy``."""
    return dict(endpoint_url=proxy.endpoint_url, session_vars=seaweed.session_vars(),
                progress=False)
