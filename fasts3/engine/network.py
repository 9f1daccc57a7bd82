"""What a socket-level failure means, and the TLS settings of a connection.

The transport turns every exception raised while connecting, sending or reading a body into
one :func:`classify`-ed ``(code, transient, message)`` triple; this is the only place that
decides whether a network failure is worth another try. The rules (see DESIGN "Failures"):

* refused, reset, unreachable, DNS failure, connect or read timeout, a TLS error mid-stream,
  a body cut short: transient (retried with backoff by the caller);
* a certificate that cannot be verified: permanent (``CertificateError``): retrying cannot
  make an untrusted certificate trusted.

Messages name the endpoint as ``host:port`` and never contain credentials.
"""

from __future__ import annotations

import os
import socket
import ssl

#: what ``verify`` may be: ``True`` (system CAs), ``False`` (no verification) or the path of
#: a CA bundle file (PEM) or directory of hashed CA certificates.
Verify = bool | str


def ssl_context(verify: Verify = True) -> ssl.SSLContext:
    """A client TLS context for ``verify`` (see :data:`Verify`).

    Raises ``OSError`` for a CA path that cannot be read and ``ssl.SSLError`` for a file that
    holds no usable certificate.
    """
    if isinstance(verify, str):
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    ctx = ssl.create_default_context()
    if verify is False:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


_CA_HINT = ("set AWS_CA_BUNDLE or client_params={'verify': '/path/to/ca.pem'} to the CA that "
            "signed it (verify=False skips the check)")


def classify(exc: BaseException, where: str, connecting: bool) -> tuple[str, bool, str]:
    """``(code, transient, message)`` for ``exc``, raised while talking to ``where``
    (``host:port``); ``connecting`` says whether the connection was being opened."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = getattr(exc, "verify_message", None) or detail
        return ("CertificateError", False,
                f"TLS certificate of {where} not trusted ({why}): {_CA_HINT}")
    if isinstance(exc, socket.gaierror):
        host = where.rsplit(":", 1)[0]
        return "DNSFailure", True, f"cannot resolve {host} ({detail})"
    if isinstance(exc, ConnectionRefusedError):
        return "ConnectionRefused", True, f"connection refused by {where}"
    if isinstance(exc, TimeoutError):
        if connecting:
            return "ConnectTimeout", True, f"timed out connecting to {where}"
        return "Timeout", True, f"timed out waiting for {where}"
    if isinstance(exc, ssl.SSLError):
        return "SSLError", True, f"TLS error with {where}: {detail}"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        # (http.client.RemoteDisconnected is a ConnectionResetError)
        return "ConnectionReset", True, f"connection to {where} reset ({detail})"
    if connecting:
        return "NetworkError", True, f"cannot connect to {where} ({detail})"
    return "NetworkError", True, f"network error with {where} ({detail})"
