"""The reference: Metaflow's own ``metaflow.S3`` (metaflow 2.19.39, a test dependency) pointed
at the session's SeaweedFS.

Metaflow builds its boto3 clients from the environment: credentials and region from
``AWS_*``, the endpoint from ``METAFLOW_S3_ENDPOINT_URL``; its transfers run in ``s3op``
subprocesses that inherit the environment. Its configuration is read once, at import (which
may have happened earlier in the session), so the in-process copies are patched too. (Passing
``client_params=`` instead breaks metaflow.S3: its first in-process call adds a botocore
``Config`` to that dict, which it then fails to JSON-encode for ``s3op``.) Retries are cut
down so that error scenarios answer in seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fasts3.local import LocalS3

MF_TRANSIENT_RETRIES = 1


def metaflow_factory(seaweed: LocalS3, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``make(**kwargs)``: a ``metaflow.S3(**kwargs)`` talking to ``seaweed`` (environment
    set through ``monkeypatch``, so it is undone after the test)."""
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("METAFLOW_S3_ENDPOINT_URL", seaweed.endpoint_url)
    monkeypatch.setenv("METAFLOW_S3_RETRY_COUNT", "0")
    monkeypatch.setenv("METAFLOW_S3_TRANSIENT_RETRY_COUNT", str(MF_TRANSIENT_RETRIES))
    import metaflow.plugins.datatools.s3.s3 as mf_module
    import metaflow.plugins.datatools.s3.s3util as mf_util

    monkeypatch.setattr(mf_module, "S3_RETRY_COUNT", 0)
    monkeypatch.setattr(mf_module, "S3_TRANSIENT_RETRY_COUNT", MF_TRANSIENT_RETRIES)
    # read at import: it may have happened before the environment was set
    monkeypatch.setattr(mf_util, "DATATOOLS_CLIENT_PARAMS", {"endpoint_url": seaweed.endpoint_url})

    def make(**kwargs: Any) -> Any:
        return mf_module.S3(**kwargs)

    return make
