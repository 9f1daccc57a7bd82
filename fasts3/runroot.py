"""``S3(run=...)``: root a client at ``<datatools root>/<flow name>/<run id>`` as Metaflow does.

Duck-typed, so metaflow is never a dependency: a Run-like object with ``pathspec``
(``"Flow/RunId"``) or ``parent.id`` and ``id``; or a FlowSpec inside a running flow (then
``metaflow.current`` gives the flow name and run id). The datatools root comes from
``FASTS3_DATATOOLS_S3ROOT``, else ``METAFLOW_DATATOOLS_S3ROOT``, else Metaflow's config.
"""

from __future__ import annotations

import os
from typing import Any

from .errors import S3URLError


def datatools_root() -> str:
    root = os.environ.get("FASTS3_DATATOOLS_S3ROOT") or os.environ.get(
        "METAFLOW_DATATOOLS_S3ROOT")
    if not root:
        try:
            from metaflow.metaflow_config import DATATOOLS_S3ROOT

            root = DATATOOLS_S3ROOT
        except ImportError:
            root = None
    if not root:
        raise S3URLError("S3(run=...) needs a datatools root: set FASTS3_DATATOOLS_S3ROOT "
                         "(or Metaflow's METAFLOW_DATATOOLS_S3ROOT)")
    return root.rstrip("/")


def _is_flowspec(obj: Any) -> bool:
    # A FlowSpec's attribute lookup falls through to its artifacts, so a flow with artifacts
    # named "pathspec" or "parent"/"id" must never be mistaken for a Run.
    return any(cls.__name__ == "FlowSpec" for cls in type(obj).__mro__)


def _current_flow_and_run() -> tuple[str, str]:
    try:
        from metaflow import current

        if current.is_running_flow:
            return str(current.flow_name), str(current.run_id)
    except ImportError:
        pass
    raise S3URLError("S3(run=...) needs a Metaflow Run, or a FlowSpec inside a running flow")


def _flow_and_run(run: Any) -> tuple[str, str]:
    if _is_flowspec(run):
        return _current_flow_and_run()
    pathspec = getattr(run, "pathspec", None)
    if isinstance(pathspec, str) and pathspec.count("/") >= 1:
        flow, run_id = pathspec.split("/")[:2]
        return flow, run_id
    parent = getattr(run, "parent", None)
    if parent is not None and getattr(parent, "id", None) and getattr(run, "id", None):
        return str(parent.id), str(run.id)
    return _current_flow_and_run()


def run_root(run: Any, bucket: str | None = None, prefix: str | None = None) -> str:
    """The s3root for ``run``; ``bucket``/``prefix`` override the datatools root's parts."""
    root = datatools_root()
    if not root.startswith("s3://"):
        raise S3URLError("The datatools root must be an s3:// URL", url=root)
    rbucket, _, rprefix = root[5:].partition("/")
    bucket = bucket or rbucket
    prefix = (prefix if prefix is not None else rprefix).strip("/")
    flow, run_id = _flow_and_run(run)
    parts = [p for p in (bucket, prefix, flow, run_id) if p]
    return "s3://" + "/".join(parts)
