"""Helpers shared by the fsspec test modules."""

from __future__ import annotations

import fsspec

from fasts3.local import LocalS3


def register() -> None:
    """Make ``fasts3://`` resolvable even where the installed fasts3 predates its
    ``fsspec.specs`` entry point (``test_fsspec.py::test_entry_point`` checks that one)."""
    fsspec.register_implementation("fasts3", "fasts3.fsspec.FastS3FileSystem", clobber=True)


def storage_options(server: LocalS3, **extra: object) -> dict:
    """s3fs-style storage options pointing at ``server``."""
    sv = server.session_vars()
    return dict(endpoint_url=server.endpoint_url, key=sv["aws_access_key_id"],
                secret=sv["aws_secret_access_key"], **extra)
