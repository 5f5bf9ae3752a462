"""The SSRF guard for base URLs that users (or staff, for the team key) choose.

A base URL the operator did not set could point the server, and the key it sends, at anything the
server can reach: its own loopback services, the private network, the cloud's metadata endpoint.
The peers learned this the hard way (LibreChat's fixes for DNS rebinding, LiteLLM's open
`api_base`). So such a URL must use https, and every address its host resolves to must be public,
unless the host is in UPSTREAM_ALLOWED_HOSTS (the operator's own list: an Ollama on the LAN, a
company proxy).

It is checked twice:
- when it is saved (`check_base_url`: settings page, PATCH /api/profile/, admin), so the user
  hears about it at once;
- at connection time, for every connection: the clients for these URLs resolve names through
  `GuardedResolver`, which applies the same check to the addresses the connection is then made to
  (so a name that resolves to a public address when saved and to 127.0.0.1 later, DNS rebinding,
  is refused before a byte is sent, and so is never sent the key). An IP literal never reaches a
  resolver (aiohttp connects to it directly), so `check_literal` runs before every call instead.

`resolve()` is the one place a name is resolved, a module-level function so tests can substitute
it to simulate DNS answers.
"""

import asyncio
import ipaddress
import logging
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from django.conf import settings

from core.errors import ApiError

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Where clouds answer instance metadata (credentials included). Most are also link-local or private
# and refused as such; naming them makes the message clearer, and catches those that are not
# (Alibaba's sits in the shared 100.64/10 range, Azure's wire server on a public-looking address).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, Oracle, DigitalOcean, OpenStack...
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.253",  # AWS DNS resolver
        "fd00:ec2::254",  # AWS over IPv6
        "fd00:ec2::23",  # AWS DNS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure wire server
        "192.0.0.192",  # Oracle Cloud (legacy)
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # an IPv4 address inside, reached through a NAT64 gateway


class HostRefused(OSError):
    """A base URL failed the guard. An OSError, so that aiohttp reports a refusal at connection time
    as a connection failure (and the SDK keeps it on the cause chain: sdk_internals.host_refusal)."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"The server at {host or 'this URL'} was refused: {reason}.")
        self.host = host
        self.reason = reason

    @property
    def message(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str  # lower case, IPv6 without brackets
    port: int


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (blocking: run it in a thread from async code). Raises
    socket.gaierror if it does not resolve. Tests substitute this function to play DNS."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def allowed_hosts() -> frozenset[str]:
    return frozenset(_normalised(host) for host in settings.UPSTREAM_ALLOWED_HOSTS if host.strip())


def is_allowlisted(host: str) -> bool:
    return _normalised(host) in allowed_hosts()


def parse_base_url(url: str) -> Target:
    """The URL's scheme, host and port; refuses what is not a plain http(s) URL of a server."""
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        raise HostRefused("", "this is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise HostRefused(host or "", "the URL must start with https:// and name a server")
    if parts.username is not None or parts.password is not None:
        raise HostRefused(host, "a base URL may not carry a user name or password")
    if parts.query or parts.fragment:
        raise HostRefused(host, "a base URL has no query (?...) or fragment (#...)")
    return Target(parts.scheme, _normalised(host), port or (443 if parts.scheme == "https" else 80))


def address_problem(address: str | IPAddress) -> str | None:
    """Why a server must not be reached at this address, or None for a public address."""
    ip = ipaddress.ip_address(address.split("%")[0]) if isinstance(address, str) else address
    embedded = _embedded_ipv4(ip)
    if embedded is not None and (problem := address_problem(embedded)):
        return problem
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for kind, found in (
        ("a loopback", ip.is_loopback),
        ("a link-local", ip.is_link_local),
        ("a multicast", ip.is_multicast),
        ("an unspecified", ip.is_unspecified),
        ("a private", ip.is_private),
        ("a reserved", ip.is_reserved),
        ("a non-public", not ip.is_global),  # the rest: shared (100.64/10), documentation, benchmarking...
    ):
        if found:
            return f"{kind} address"
    return None


def check_addresses(host: str, addresses: list[str]) -> None:
    """Refuse if ANY address is not public: a name with one public and one private address could
    be connected to either."""
    if not addresses:
        raise HostRefused(host, "its name does not resolve to any address")
    for address in addresses:
        problem = address_problem(address)
        if problem is not None:
            logger.warning("base URL host %s refused: it resolves to %s (%s)", host, address, problem)
            raise HostRefused(host, f"it resolves to {problem}; only public addresses are allowed")


def check_literal(url: str) -> Target:
    """The checks that need no name resolution: scheme, and the address if the host is an IP
    literal. Cheap (a few µs): run before every call, since aiohttp connects to a literal without
    asking the resolver."""
    target = parse_base_url(url)
    if is_allowlisted(target.host):
        return target
    if target.scheme != "https":
        raise HostRefused(
            target.host, "only https is allowed (plain http only for hosts in UPSTREAM_ALLOWED_HOSTS)"
        )
    literal = _ip_literal(target.host)
    if literal is not None and (problem := address_problem(literal)):
        raise HostRefused(target.host, f"it is {problem}; only public addresses are allowed")
    return target


def check_base_url(url: str) -> str:
    """The whole check, name resolution included (blocking): when a base URL is saved. Returns the
    URL as it is stored (trimmed, without a trailing slash). Raises HostRefused."""
    url = url.strip().rstrip("/")
    target = check_literal(url)
    if is_allowlisted(target.host) or _ip_literal(target.host) is not None:
        return url
    try:
        addresses = resolve(target.host, target.port)
    except (socket.gaierror, UnicodeError):
        raise HostRefused(target.host, "its name does not resolve") from None
    check_addresses(target.host, addresses)
    return url


class GuardedResolver(AbstractResolver):
    """aiohttp's name resolution for user and team base URLs: the addresses a connection is made to
    are the ones checked here, at connection time (aiohttp connects only to what this returns)."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        addresses = await loop.run_in_executor(None, resolve, host, port)  # the module's, as tests set it
        if not is_allowlisted(host):
            check_addresses(host, addresses)
        results: list[ResolveResult] = []
        for address in addresses:
            address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
            if family in (socket.AF_INET, socket.AF_INET6) and address_family != family:
                continue
            results.append(
                {
                    "hostname": host,
                    "host": address,
                    "port": port,
                    "family": address_family,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                }
            )
        if not results:
            raise OSError(f"{host} has no address of the family asked for")
        return results

    async def close(self) -> None:
        pass


def refused_error(refusal: HostRefused, *, source: str) -> ApiError:
    """The error an API caller gets: which check failed, where to fix it (never the key)."""
    fix = (
        "Change the base URL in your profile settings."
        if source == "own"
        else "The team's server is set by your administrator: ask them to fix it."
    )
    return ApiError(400, "openai_base_url_refused", f"{refusal.message} {fix}")


def _normalised(host: str) -> str:
    return host.strip().lower().strip("[]").rstrip(".")


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:  # ::ffff:127.0.0.1
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None
