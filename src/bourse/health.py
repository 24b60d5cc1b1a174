"""``bourse health``: is an exchange up and able to serve?

It is the container's health check, so it must work however the server is
configured, and it is configured the same way: it reads the options and
``BOURSE_*`` variables of ``bourse serve`` (the container gives both the
same environment) and asks the server where that configuration says it
listens. It asks as a client would: one connection, one empty ``<create/>``
(it creates nothing, so it is accepted from any connection whatever the
access control), and the server is healthy only if it answers
``<results>`` without an ``<error>``. A server still loading its state is
not listening yet, and one that lost its database answers "Exchange
unavailable": both are unhealthy.

Where it asks:

- the public port, over TLS when the server has a certificate. The probe
  trusts exactly the certificate the server is configured with, without
  checking its host name (it connects to a local address, not to the
  public name), so a certificate that expired fails it;
- when the public port requires client certificates and the probe was
  given none (``--health-cert``, ``--health-key``): the admin listener,
  else the metrics endpoint's ``/healthz`` (200 while the exchange is
  loaded and its database up), else nowhere, which it says.

A wildcard listening address (``0.0.0.0``, ``::``) is asked on loopback.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

from bourse.protocol.framing import frame_request
from bourse.server.config import ServerConfig

PROBE = b"<create/>"
FRAMED_PROBE = frame_request(PROBE)
REPLY_END = b"</results>"
LARGEST_REPLY = 64 * 1024


@dataclass(frozen=True, slots=True)
class Target:
    """Where the probe asks, and how."""

    host: str
    port: int
    #: The client side of TLS, when the port speaks it.
    tls: ssl.SSLContext | None = None
    #: Ask the metrics endpoint's ``/healthz`` rather than the exchange.
    http: bool = False

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        how = " (TLS)" if self.tls is not None else " (/healthz)" if self.http else ""
        return f"{host}:{self.port}{how}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The verdict, and where it was asked or what went wrong."""

    healthy: bool
    detail: str


def probe(
    config: ServerConfig,
    timeout: float,
    *,
    certificate: Path | None = None,
    key: Path | None = None,
) -> Outcome:
    """Is the server that ``config`` describes healthy? ``certificate`` and
    ``key``: what the probe presents when client certificates are required."""
    try:
        target = find_target(config, certificate, key)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        return Outcome(healthy=False, detail=f"cannot set up the probe: {exc}")
    if isinstance(target, str):
        return Outcome(healthy=False, detail=target)
    deadline = time.monotonic() + timeout
    problem = _ask_healthz(target, timeout) if target.http else _ask_exchange(target, deadline)
    return Outcome(healthy=problem is None, detail=str(target) if problem is None else problem)


def find_target(config: ServerConfig, certificate: Path | None, key: Path | None) -> Target | str:
    """Where to ask the server that ``config`` describes, or why nowhere."""
    needs_certificate = config.tls_client_ca is not None and certificate is None
    if config.port and not needs_certificate:
        tls = _tls(config, certificate, key)
        return Target(loopback_if_wildcard(config.host), config.port, tls)
    if config.admin_port:
        return Target(loopback_if_wildcard(config.admin_host), config.admin_port)
    if config.metrics_port:
        return Target(loopback_if_wildcard(config.metrics_host), config.metrics_port, http=True)
    if not config.port:
        return "the server's port is picked at start (port 0): give the probe --port"
    return (
        "the public port requires client certificates: give the probe one "
        "(--health-cert, --health-key), or run an admin listener or the metrics port"
    )


def loopback_if_wildcard(host: str) -> str:
    """The address to reach a server listening on ``host``: loopback for a
    wildcard (of the same family), else ``host`` itself."""
    if not host:
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # a name
    if not address.is_unspecified:
        return host
    return "::1" if address.version == 6 else "127.0.0.1"


def _tls(config: ServerConfig, certificate: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """The probe's side of TLS on the public port, if it speaks TLS: it
    trusts the server's own certificate (its chain file), host name unchecked."""
    if config.tls_cert is None:
        return None
    context = ssl.create_default_context(cafile=config.tls_cert)
    context.check_hostname = False  # the certificate names the public host, not loopback
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the server's own certificate is anchor
    if certificate is not None:
        context.load_cert_chain(certificate, key)
    return context


def _ask_exchange(target: Target, deadline: float) -> str | None:
    """None if the exchange answered the probe cleanly, else what went wrong."""
    try:
        with socket.create_connection((target.host, target.port), timeout=_left(deadline)) as raw:
            connection = raw if target.tls is None else target.tls.wrap_socket(raw)
            with connection:
                connection.sendall(FRAMED_PROBE)
                reply = _read_reply(connection, deadline)
    except OSError as exc:
        return f"no answer from {target}: {exc or type(exc).__name__}"
    if not reply.endswith(REPLY_END):
        return f"unexpected reply from {target}: {reply[:200]!r}"
    if b"<error" in reply:
        return f"{target} refused the probe: {reply[:200]!r}"
    return None


def _read_reply(connection: socket.socket, deadline: float) -> bytes:
    """Everything up to the end of one ``<results>`` element, or to EOF."""
    received = bytearray()
    while len(received) < LARGEST_REPLY:
        connection.settimeout(_left(deadline))
        chunk = connection.recv(4096)
        if not chunk:
            break
        received += chunk
        if received.rstrip().endswith(REPLY_END):
            break
    return bytes(received).strip()


def _left(deadline: float) -> float:
    """Seconds to the deadline; a socket timeout of 0 would mean non-blocking."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


def _ask_healthz(target: Target, timeout: float) -> str | None:
    """None if the metrics endpoint says the exchange is ready."""
    connection = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        body = response.read(200)
    except (OSError, http.client.HTTPException) as exc:
        return f"no answer from {target}: {exc or type(exc).__name__}"
    finally:
        connection.close()
    if response.status != http.client.OK:
        return f"{target} answered {response.status}: {body!r}"
    return None
