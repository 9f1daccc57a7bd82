"""A lean replacement for ``http.client.parse_headers``, for worker processes only.

``http.client`` parses every response's headers with the ``email`` package, which costs about a
quarter of the CPU of a small GET here (~0.1 ms per response). S3 answers are plain
``Name: value`` lines, so this parser reads them with the buffered reader's C ``readline`` and
returns a small case-insensitive mapping with the methods ``http.client`` uses (``get``,
``get_all``, ``items``, ...). Folded continuation lines are joined; limits match the stdlib's
(65536-byte lines, 100 headers).

:func:`install` swaps it in for the whole process. Workers call it at start-up: they run nothing
but our transport. The parent process never does, because boto3/urllib3 share ``http.client``.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from typing import IO

_MAX_LINE = 65536
_MAX_HEADERS = 100


class Headers:
    """Response headers: ordered ``(name, value)`` pairs, looked up case-insensitively."""

    __slots__ = ("_items", "_first")

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items
        self._first: dict[str, str] = {}
        for name, value in items:
            self._first.setdefault(name.lower(), value)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._first.get(name.lower(), default)

    def get_all(self, name: str, failobj: list[str] | None = None) -> list[str] | None:
        low = name.lower()
        found = [v for n, v in self._items if n.lower() == low]
        return found or failobj

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def keys(self) -> list[str]:
        return [n for n, _ in self._items]

    def values(self) -> list[str]:
        return [v for _, v in self._items]

    def __getitem__(self, name: str) -> str | None:
        return self._first.get(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._items)

    def __str__(self) -> str:
        return "".join(f"{n}: {v}\r\n" for n, v in self._items) + "\r\n"


def parse_headers(fp: IO[bytes], _class: object = None) -> Headers:
    """Read header lines from ``fp`` up to the blank line; same signature and limits as
    ``http.client.parse_headers`` (raises ``LineTooLong`` / ``HTTPException``)."""
    items: list[tuple[str, str]] = []
    while True:
        line = fp.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("header line")
        if line in (b"\r\n", b"\n", b""):
            return Headers(items)
        if line[:1] in (b" ", b"\t") and items:  # obsolete line folding
            name, value = items[-1]
            items[-1] = (name, value + " " + line.decode("iso-8859-1").strip())
            continue
        if len(items) >= _MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")
        name, sep, value = line.decode("iso-8859-1").partition(":")
        if sep:
            items.append((name.strip(), value.strip()))


def install() -> None:
    """Use :func:`parse_headers` for every ``http.client`` response in this process."""
    http.client.parse_headers = parse_headers  # type: ignore[assignment]
