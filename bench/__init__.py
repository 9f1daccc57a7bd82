"""Side-by-side throughput benchmark of fasts3 and other S3 clients (see bench/README.md)."""
