"""What one connection's session asks before it parses or applies a request.

The session (``protocol/session.py``) keeps the wire rules and takes the
decisions that need the server's settings, a clock or the client's address
from here, as its ``RequestPolicy``: the per-connection rate limit (a token
bucket, checked before the request is parsed, so a flood costs no parsing)
and access control (who may ``<create>``, which token a ``<transactions>``
needs).
"""

from __future__ import annotations

from bourse.core.commands import Request, TransactionsRequest
from bourse.core.errors import ErrorCode
from bourse.server.access import AccessPolicy
from bourse.server.config import ServerConfig
from bourse.server.limits import TokenBucket


class ConnectionAdmission:
    """The rate limit and access rules of one connection."""

    __slots__ = ("_access", "_admin", "_bucket", "peer")

    def __init__(self, config: ServerConfig, access: AccessPolicy, *, admin: bool) -> None:
        self._access = access
        self._admin = admin
        self._bucket = (
            TokenBucket(config.connection_rate, config.connection_burst)
            if config.connection_rate > 0
            else None
        )
        #: The client's address, once the connection has its socket.
        self.peer: str | None = None

    def refusal_before_parsing(self) -> ErrorCode | None:
        """A request beyond the connection's rate is refused unparsed."""
        if self._bucket is not None and not self._bucket.allow():
            return ErrorCode.RATE_LIMITED
        return None

    def refusal_of(self, request: Request) -> ErrorCode | None:
        """Why access control refuses ``request`` here, if it does."""
        if type(request) is TransactionsRequest:
            if not self._access.may_transact(request.account_id, request.token):
                return ErrorCode.UNAUTHORIZED
        elif request.commands and not self._access.may_create(
            on_admin_listener=self._admin, peer=self.peer
        ):  # an empty <create> creates nothing: anyone may send it (access.py)
            return ErrorCode.CREATE_FORBIDDEN
        return None
