"""Fetching images by URL, for servers that allow it (off by default).

Rules, each with a clear error:

* only ``http`` and ``https``, no credentials in the URL;
* the host is resolved once, every address it resolves to must be public
  (unless private addresses are allowed), and the connection goes to that
  checked address, with the original ``Host`` and TLS server name, so a DNS
  answer that changes between check and connect (rebinding) cannot redirect
  the fetch;
* redirects are followed by hand, a few at most, each checked the same way;
* the whole fetch has a deadline, and the body a byte cap (checked against
  ``Content-Length`` first and counted while streaming).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urljoin, urlsplit, urlunsplit

import anyio
import httpx

from ..errors import FetchError, FetchNotAllowed, LimitExceeded
from .settings import FetchSettings

__all__ = ["Fetcher", "Resolver", "address_allowed", "embedded_ipv4", "system_resolver"]

Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix: the IPv4 is the last 32 bits
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215 local use: the IPv4 sits where the operator chose
_SIIT = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765 IPv4-translated addresses
_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible addresses (::a.b.c.d)


def embedded_ipv4(addr: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (IPv4-mapped, -compatible, -translated, NAT64, 6to4, Teredo).

    Traffic to such an address ends up at the IPv4 one, so that is the one to judge.
    """
    low = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    found: list[ipaddress.IPv4Address] = []
    if addr.ipv4_mapped is not None:
        found.append(addr.ipv4_mapped)
    if addr in _NAT64 or addr in _SIIT or (addr in _COMPATIBLE and int(addr) > 1):
        found.append(low)
    if addr.sixtofour is not None:
        found.append(addr.sixtofour)
    if addr.teredo is not None:
        found.extend(addr.teredo)  # (server, client): the client is where the packets go
    return found


def _allowed(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_private: bool) -> bool:
    if addr.is_unspecified or addr.is_multicast:
        return False
    return allow_private or addr.is_global


def address_allowed(ip: str, *, allow_private: bool) -> bool:
    """Whether a connection to ``ip`` is allowed: public unicast only, unless private ones are allowed.

    An IPv6 address that carries an IPv4 one is judged by that IPv4 address too:
    ``64:ff9b::7f00:1`` (NAT64) or ``2002:7f00:1::`` (6to4) is loopback. NAT64
    local-use addresses (``64:ff9b:1::/48``) count as private: where the IPv4
    address sits in them depends on the network.
    """
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv4Address):
        return _allowed(addr, allow_private)
    if addr in _NAT64_LOCAL:
        return allow_private
    embedded = embedded_ipv4(addr)
    if not all(_allowed(v4, allow_private) for v4 in embedded):
        return False
    if addr.ipv4_mapped is not None or (addr in _COMPATIBLE and int(addr) > 1):
        return True  # only a spelling of the IPv4 address, which passed
    return _allowed(addr, allow_private)


def _shown(url: str) -> str:
    return url if len(url) <= 200 else url[:197] + "..."


class Fetcher:
    """Fetches image bytes from http(s) URLs under :class:`FetchSettings`."""

    def __init__(self, settings: FetchSettings, max_bytes: int, *, resolver: Resolver | None = None) -> None:
        self.settings = settings
        self.max_bytes = max_bytes
        self.resolver = resolver or system_resolver
        self._client: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # trust_env=False: proxies from the environment would connect somewhere other than the checked address.
            self._client = httpx.AsyncClient(trust_env=False, follow_redirects=False,
                                             timeout=self.settings.timeout_s, headers={"User-Agent": "crossmodal"})
        return self._client

    async def fetch(self, url: str) -> bytes:
        if not self.settings.enabled:
            raise FetchNotAllowed(
                f"image URL {_shown(url)!r} refused: fetching URLs is off on this server "
                "(send the image as a data: URL or an upload, or start the server with --allow-urls)"
            )
        try:
            with anyio.fail_after(self.settings.timeout_s):
                return await self._fetch(url)
        except TimeoutError as exc:
            raise FetchError(f"image URL {_shown(url)!r} timed out after {self.settings.timeout_s:g} s", input=_shown(url)) from exc

    async def _fetch(self, url: str) -> bytes:
        original = url
        for _ in range(self.settings.max_redirects + 1):
            target, host_header, host = await self._checked_target(url, original)
            request = self._http().build_request("GET", target, headers={"Host": host_header},
                                                 extensions={"sni_hostname": host})
            try:
                response = await self._http().send(request, stream=True)
            except httpx.HTTPError as exc:
                raise FetchError(f"cannot fetch image URL {_shown(original)!r}: {type(exc).__name__}", input=_shown(original)) from exc
            try:
                if response.is_redirect and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                if response.status_code != 200:
                    raise FetchError(f"image URL {_shown(original)!r} answered HTTP {response.status_code}", input=_shown(original))
                return await self._read_capped(response, original)
            finally:
                await response.aclose()
        raise FetchError(f"image URL {_shown(original)!r} redirected more than {self.settings.max_redirects} times",
                         input=_shown(original))

    async def _checked_target(self, url: str, original: str) -> tuple[str, str, str]:
        """The URL rewritten to a checked IP address, the Host header, and the host name."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise FetchNotAllowed(f"image URL {_shown(original)!r} refused: only http and https URLs can be fetched")
        if parts.username or parts.password:
            raise FetchNotAllowed(f"image URL {_shown(original)!r} refused: credentials in URLs are not allowed")
        host = parts.hostname
        if not host:
            raise FetchError(f"image URL {_shown(original)!r} has no host", input=_shown(original))
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise FetchError(f"image URL {_shown(original)!r} has a bad port", input=_shown(original)) from exc
        try:
            addresses = await self.resolver(host, port)
        except OSError as exc:
            raise FetchError(f"cannot resolve the host of image URL {_shown(original)!r}", input=_shown(original)) from exc
        if not addresses:
            raise FetchError(f"cannot resolve the host of image URL {_shown(original)!r}", input=_shown(original))
        for ip in addresses:
            if not address_allowed(ip, allow_private=self.settings.allow_private):
                raise FetchNotAllowed(
                    f"image URL {_shown(original)!r} refused: its host resolves to a private, loopback or reserved "
                    "address (start the server with --allow-private-urls to allow that)"
                )
        ip = addresses[0]
        ip_host = f"[{ip}]" if ":" in ip else ip
        netloc = f"{ip_host}:{port}"
        host_header = parts.netloc.rpartition("@")[2]
        target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        return target, host_header, host

    async def _read_capped(self, response: httpx.Response, original: str) -> bytes:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise LimitExceeded(f"image URL {_shown(original)!r} holds {int(declared):,} bytes, "
                                f"over the limit of {self.max_bytes:,} bytes per image")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise LimitExceeded(f"image URL {_shown(original)!r} is over the limit of {self.max_bytes:,} bytes per image")
            chunks.append(chunk)
        return b"".join(chunks)
