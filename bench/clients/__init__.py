"""One module per client, `bench/clients/<name>_client.py`, each with two context managers:

* `get(cfg)`: download every `cfg["names"]` object under `s3://bucket/src_prefix/` into
  `cfg["dest_dir"]` (or a temp dir the client creates inside it) and yield `{name: local path}`;
* `put(cfg)`: upload `cfg["src_dir"]/<name>` for every name to `s3://bucket/dest_prefix/<name>`.

Each module imports its library at import time (imports are not timed). The child times
from entering the context to the `yield` (client construction included), verifies while the
context is still open (fasts3 and metaflow delete their temp files on close), then closes it
untimed.
"""

CLIENTS = ["fasts3", "boto3", "s3transfer", "metaflow", "s5cmd", "obstore"]

PART = 8 * 1024 * 1024  # part size used where the harness picks one (boto3, obstore)


def boto3_client(cfg: dict, pool: int = 64):
    """A plain boto3 S3 client for the benchmark server with `pool` HTTP connections."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=cfg["endpoint_url"],
        aws_access_key_id=cfg["access_key"],
        aws_secret_access_key=cfg["secret_key"],
        region_name=cfg["region"],
        config=Config(max_pool_connections=pool, retries={"max_attempts": 5, "mode": "standard"}),
    )


def parts(size: int, part: int = PART) -> list[tuple[int, int]]:
    """[(offset, length)] covering size bytes in part-sized pieces."""
    return [(off, min(part, size - off)) for off in range(0, size, part)] or [(0, 0)]
