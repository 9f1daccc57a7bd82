"""How long an object body is, and whether an answer is the range that was asked for.

DESIGN "Failures": a response body is framed by ``Content-Length`` or by chunked encoding;
anything else (a body that ends when the server closes the connection) cannot be told apart
from a truncated one, so a download never trusts it: :func:`body_length` raises a permanent
``UnframedResponse`` instead of letting a short (or empty) file pass as complete.

A ranged GET answered ``200`` with the whole object (a server or proxy that ignores
``Range``) is acceptable only when the whole object lies inside the range asked for (a small
object); otherwise :func:`check_range_honoured` drops the connection before any of the body
is read (memory stays bounded) and raises a permanent ``RangeIgnored``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .transport import NetworkFailure

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


def body_length(resp: Any, drop: Callable[[], None]) -> int | None:
    """Bytes in ``resp``'s body (``resp`` has ``status``, ``headers`` and ``chunked``): its
    ``Content-Length``, or for a chunked body the length its ``Content-Range`` announces,
    else ``None`` (read the chunks to their end).

    Raises ``NetworkFailure("UnframedResponse", transient=False)`` for a body framed by
    neither, after calling ``drop()`` (which closes the connection, the body unread).
    """
    cl = resp.headers.get("content-length")
    if cl is not None and not resp.chunked:
        return int(cl)
    if resp.chunked:
        m = _CONTENT_RANGE.match(resp.headers.get("content-range", ""))
        return int(m.group(2)) - int(m.group(1)) + 1 if resp.status == 206 and m else None
    drop()
    raise NetworkFailure("UnframedResponse", f"HTTP {resp.status} answer without "
                         "Content-Length or chunked encoding: its end cannot be checked",
                         transient=False)


def covers_whole(rng: str, size: int) -> bool:
    """Whether the Range header value ``rng`` (``bytes=a-b``, ``bytes=a-``, ``bytes=-n``)
    covers every byte of an object of ``size`` bytes."""
    m = _RANGE.match(rng.strip())
    if not m:
        return False
    first, last = m.group(1), m.group(2)
    if not first:  # a suffix: the last n bytes
        return bool(last) and int(last) >= size
    return int(first) == 0 and (not last or int(last) >= size - 1)


def check_range_honoured(resp: Any, rng: str | None, length: int | None,
                         drop: Callable[[], None]) -> None:
    """Raise ``NetworkFailure("RangeIgnored", transient=False)`` (after ``drop()``, which
    closes the connection, the body unread) if a request sent with Range header ``rng``
    got a ``200`` whole-object answer (of ``length`` bytes, ``None`` if unknown) that holds
    more than the range asked for."""
    if not rng or resp.status != 200:
        return
    if length is not None and covers_whole(rng, length):
        return
    drop()
    raise NetworkFailure("RangeIgnored", f"a GET with 'Range: {rng}' was answered with the "
                         f"whole object ({length if length is not None else 'unknown'} bytes): "
                         "the server ignores Range; a part_size above the object's size "
                         "fetches it in one request", transient=False)
