"""Who may call the service, and which files it may read.

* **Tokens.** With tokens configured every request except ``/healthz`` (and the
  page's static shell, which holds no data) needs ``Authorization: Bearer T``,
  checked by :class:`GuardMiddleware` before the body is read or a route is
  matched; with write tokens configured, routes that change a collection need
  one of those (:func:`require_write`). Tokens are compared in constant time.
* **Hosts and origins.** With ``allowed_hosts`` set (``crossmodal serve`` sets
  the loopback names when it binds loopback) a request naming another host is
  refused, which defeats DNS rebinding; a state-changing request whose
  ``Origin`` is another site, or ``null`` (sandboxed frames, ``file:`` pages),
  is refused unless that origin is allowed (CSRF).
* **Roots.** A path in a request is read only when, after resolving ``..``,
  symlinks and (for ``file:`` URIs) percent-encoding, it lies inside one of
  the configured roots. The check happens before any existence test, so a
  refused path reveals nothing about the file system. The file is then opened
  by walking down from the root's descriptor one component at a time, following
  no symlink (a symlink swapped in after the check is refused), and read with a
  size cap; callers hash and decode those bytes, never open the path again.
"""

from __future__ import annotations

import errno
import hmac
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import AccessDenied, CrossmodalError, ImageDecodeError, LimitExceeded, PathNotAllowed, Unauthorized
from .errors import error_response
from .settings import ServerSettings

__all__ = ["FileRead", "GuardMiddleware", "check_request", "check_token", "is_public", "read_file_under_roots",
           "read_under_roots", "require_write", "resolve_under_roots"]


PUBLIC_PATHS = frozenset({"/healthz", "/"})  # and the page's static files under /static/


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith("/static/")


def _bearer(header: str | None) -> str | None:
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _matches(token: str, allowed: Iterable[str]) -> bool:
    # Compare against every token (no early exit) so timing does not reveal which one nearly matched.
    found = False
    for candidate in allowed:
        found |= hmac.compare_digest(token.encode(), candidate.encode())
    return found


def check_token(authorization: str | None, settings: ServerSettings, *, write: bool) -> None:
    """Raise :class:`Unauthorized` / :class:`AccessDenied` unless ``authorization`` carries a good token."""
    if write and settings.write_tokens:
        needed = settings.write_tokens
    elif settings.tokens:
        needed = settings.tokens | settings.write_tokens  # a write token may also read
    else:
        return
    token = _bearer(authorization)
    if token is None:
        raise Unauthorized("this endpoint needs an 'Authorization: Bearer <token>' header")
    if _matches(token, needed):
        return
    if write and _matches(token, settings.tokens):
        raise AccessDenied("this token may read but not write; changing a collection needs a write token")
    raise Unauthorized("the bearer token is not valid")


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _host_name(host: str) -> str:
    """``example.com:8000`` -> ``example.com``; ``[::1]:8000`` -> ``[::1]``."""
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def check_request(headers: dict[str, str], path: str, method: str, settings: ServerSettings) -> None:
    """The checks every request passes before anything else runs (see :class:`GuardMiddleware`)."""
    host = headers.get("host", "")
    if settings.allowed_hosts and _host_name(host).lower() not in settings.allowed_hosts:
        # A web page whose DNS name was re-pointed at this machine (DNS rebinding) arrives with its own name.
        raise AccessDenied(f"host {host[:100]!r} is not served here (allowed: {', '.join(settings.allowed_hosts)})")
    origin = headers.get("origin")
    if method not in _SAFE_METHODS and origin is not None:
        # Browsers send Origin with cross-site POSTs; a form on another site must not change collections.
        # "null" is what sandboxed frames, file: pages and some redirects send: a page that is not this
        # site, so it is refused like any other (an operator may still allow it by name).
        same = origin != "null" and urlsplit(origin).netloc == host
        if not same and origin not in settings.cors_origins:
            raise AccessDenied(f"cross-origin request from {origin[:100]!r} refused (allow it with --cors-origin)")
    if settings.tokens and not is_public(path):
        check_token(headers.get("authorization"), settings, write=False)


class GuardMiddleware:
    """Host check, cross-origin check and the read token, before anything else happens (so a 1 GB body
    from a stranger is never read, and no route runs for a request that would be refused)."""

    def __init__(self, app: ASGIApp, settings: ServerSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])
                       if k in (b"host", b"origin", b"authorization")}
            try:
                check_request(headers, scope["path"], scope.get("method", "GET"), self.settings)
            except CrossmodalError as exc:
                await error_response(exc, self.settings)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def require_write(request: Request) -> None:
    """Route dependency for endpoints that change a collection."""
    check_token(request.headers.get("authorization"), request.app.state.settings, write=True)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _located(raw: str, roots: list[Path]) -> tuple[Path, Path]:
    """(the real path ``raw`` names, the root it lies in); else :class:`PathNotAllowed`."""
    shown = _shown(raw)
    if not roots:
        raise PathNotAllowed(f"path {shown!r} refused: this server reads no files (start it with --root DIR)")
    if raw.startswith("file:"):
        parts = urlsplit(raw)
        if parts.netloc not in ("", "localhost"):
            raise PathNotAllowed(f"path {shown!r} refused: file URIs must name a local file")
        raw = unquote(parts.path)
    if not raw or "\x00" in raw:
        raise PathNotAllowed(f"path {shown!r} refused: empty or holds a NUL byte")
    candidates = [Path(raw)] if os.path.isabs(raw) else [root / raw for root in roots]
    for candidate in candidates:
        real = os.path.realpath(candidate)
        for root in roots:
            if _inside(real, str(root)):
                return Path(real), root
    raise PathNotAllowed(f"path {shown!r} refused: it is not inside an allowed root folder")


def resolve_under_roots(raw: str, roots: Iterable[Path]) -> Path:
    """The real path ``raw`` names, if it lies inside a root; else :class:`PathNotAllowed`.

    ``raw`` is a path (absolute, or relative to a root, tried in order) or a
    ``file:`` URI (percent-decoded once, as URIs are). Nothing is percent-decoded
    in a plain path: ``%2e%2e`` there is a file name, resolved inside the root.
    """
    return _located(raw, list(roots))[0]


def _shown(raw: str) -> str:
    return raw if len(raw) <= 200 else raw[:197] + "..."


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_FILE_FLAGS = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | _CLOEXEC


def _open_beneath(real: Path, root: Path, shown: str) -> int:
    """Open ``real`` by walking down from ``root`` one component at a time, following no symlink on the way.

    ``real`` was resolved, so it holds no symlink; one found now was put there after the check (a swap)
    and is refused. What is opened is therefore what was checked: inside the root.
    """
    parts = real.relative_to(root).parts
    if not parts:
        raise ImageDecodeError(f"image {shown!r} is not a regular file", input=shown)
    fd = os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = inner
        return os.open(parts[-1], _FILE_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)


def _opened_path(fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _open_checked(real: Path, root: Path, roots: list[Path], shown: str) -> int:
    """A descriptor of the file at ``real``, opened so that it cannot be anything outside the roots."""
    try:
        if os.open in os.supports_dir_fd and _NOFOLLOW and _DIRECTORY:
            return _open_beneath(real, root, shown)
        fd = os.open(real, _FILE_FLAGS)  # no openat here: check what was opened instead
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):  # a component became a symlink
            raise PathNotAllowed(f"path {shown!r} refused: it changed while being opened") from exc
        raise
    opened = _opened_path(fd)
    if opened is not None and not any(_inside(opened, str(r)) for r in roots):
        os.close(fd)
        raise PathNotAllowed(f"path {shown!r} refused: it is not inside an allowed root folder")
    return fd


@dataclass(frozen=True)
class FileRead:
    """The bytes of a file under a root, and the real path they were read from."""

    data: bytes
    path: Path


def read_under_roots(raw: str, roots: Iterable[Path], max_bytes: int) -> FileRead:
    """Read a file under a root (see :func:`resolve_under_roots`), at most ``max_bytes``, from one descriptor:
    the bytes returned are the bytes of the file that was checked, so hash and decode them, never the path."""
    roots = list(roots)
    real, root = _located(raw, roots)
    shown = _shown(raw)
    try:
        fd = _open_checked(real, root, roots, shown)
    except CrossmodalError:
        raise
    except OSError as exc:
        raise ImageDecodeError(f"cannot read image {shown!r}: {exc.strerror or 'not readable'}", input=shown) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ImageDecodeError(f"image {shown!r} is not a regular file", input=shown)
        if info.st_size > max_bytes:
            raise LimitExceeded(f"image {shown!r} has {info.st_size:,} bytes, over the limit of {max_bytes:,} per image")
        with os.fdopen(fd, "rb", closefd=True) as fh:
            fd = -1
            data = fh.read(max_bytes + 1)
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > max_bytes:
        raise LimitExceeded(f"image {shown!r} is over the limit of {max_bytes:,} bytes per image")
    return FileRead(data, real)


def read_file_under_roots(raw: str, roots: Iterable[Path], max_bytes: int) -> bytes:
    """The bytes of a file under a root (see :func:`read_under_roots`)."""
    return read_under_roots(raw, roots, max_bytes).data
