"""ICE consent checks (STUN Binding, RFC 8489 and RFC 7675) made and answered on the bytes.

Once a connection is up, every peer keeps asking the relay for consent (Chrome every 2.5 s, aiortc every 5 s)
and the relay asks each peer (relay/aiortc_hooks.py, every 5 s for a viewer). aioice parses each message into
a ``Message`` of attribute objects, looks for its candidate pair among all of the connection's, and builds
each message the same way (XORing an address byte by byte, serialising the message three times for
MESSAGE-INTEGRITY and FINGERPRINT), with a future, a task and timers per check it makes: ~140 us of CPU per
check, per viewer. Here :func:`answer_binding` checks and answers a peer's check, and :func:`binding_request`
and :func:`is_binding_success` make the relay's and recognise their answers, in a few microseconds, byte for
byte as aioice would. Only plain consent is handled: anything else (no or a wrong MESSAGE-INTEGRITY, a role
conflict, a nomination, an error response, a malformed message) is left to aioice.
"""

from __future__ import annotations

import binascii
import hmac
import socket
import struct

COOKIE = 0x2112A442
_COOKIE_BYTES = struct.pack("!I", COOKIE)
_HEADER = struct.Struct("!HHI12s")
_ATTRIBUTE = struct.Struct("!HH")
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
USERNAME = 0x0006
PRIORITY = 0x0024
MESSAGE_INTEGRITY = 0x0008
XOR_MAPPED_ADDRESS = 0x0020
USE_CANDIDATE = 0x0025
ICE_CONTROLLED = 0x8029
ICE_CONTROLLING = 0x802A
FINGERPRINT = 0x8028
FINGERPRINT_XOR = 0x5354554E


def answer_binding(request: bytes, addr: tuple[str, int], *, local_ufrag: str, remote_ufrag: str | None,
                   password: bytes, controlling: bool) -> bytes | None:
    """The Binding success response to ``request`` from ``addr``, or None if it is not a valid plain consent check.

    Valid as aioice's ``Connection.request_received`` judges it (aioice 0.13): a Binding request whose USERNAME is
    ``<local_ufrag>:<remote_ufrag>`` and whose MESSAGE-INTEGRITY is ``password``'s HMAC-SHA1, with a correct
    FINGERPRINT if it has one, and no role conflict; and plain: no USE-CANDIDATE, which aioice must see.
    """
    read = _signed(request, BINDING_REQUEST, password)
    if read is None:
        return None
    transaction_id, attributes = read
    if USE_CANDIDATE in attributes or (ICE_CONTROLLING if controlling else ICE_CONTROLLED) in attributes:
        return None  # a nomination, or a role conflict: aioice's to handle
    local, colon, remote = attributes.get(USERNAME, b"").partition(b":")
    if not colon or local != local_ufrag.encode() or (remote_ufrag is not None and remote != remote_ufrag.encode()):
        return None
    try:
        return binding_success(transaction_id, addr, password)
    except OSError:  # an address inet_pton cannot read (a scoped IPv6 one): aioice answers it
        return None


def binding_success(transaction_id: bytes, addr: tuple[str, int], password: bytes) -> bytes:
    """A Binding success response: XOR-MAPPED-ADDRESS ``addr``, MESSAGE-INTEGRITY, FINGERPRINT (aioice's order)."""
    port = addr[1] ^ (COOKIE >> 16)
    if ":" not in addr[0]:
        host = int.from_bytes(socket.inet_pton(socket.AF_INET, addr[0]), "big")
        mapped = struct.pack("!BBHI", 0, 1, port, host ^ COOKIE)
    else:
        host = int.from_bytes(socket.inet_pton(socket.AF_INET6, addr[0]), "big")
        pad = int.from_bytes(_COOKIE_BYTES + transaction_id, "big")
        mapped = struct.pack("!BBH", 0, 2, port) + (host ^ pad).to_bytes(16, "big")
    return _sign(BINDING_SUCCESS, transaction_id, _attribute(XOR_MAPPED_ADDRESS, mapped), password)


def binding_request(transaction_id: bytes, *, username: str, password: bytes, priority: int, controlling: bool,
                    tie_breaker: int) -> bytes:
    """A consent check, as aioice 0.13's ``Connection.build_request`` (not nominating) and
    ``add_message_integrity`` write it: USERNAME, PRIORITY, ICE-CONTROLLING or -CONTROLLED, MESSAGE-INTEGRITY,
    FINGERPRINT."""
    role = ICE_CONTROLLING if controlling else ICE_CONTROLLED
    body = (_attribute(USERNAME, username.encode("utf8")) + _attribute(PRIORITY, struct.pack("!I", priority))
            + _attribute(role, struct.pack("!Q", tie_breaker)))
    return _sign(BINDING_REQUEST, transaction_id, body, password)


def is_binding_success(response: bytes, transaction_id: bytes, password: bytes) -> bool:
    """Whether ``response`` is a Binding success for the check ``transaction_id``, signed with ``password``: what
    aioice's ``Transaction`` given that integrity key accepts (anything else, it ignores or fails)."""
    read = _signed(response, BINDING_SUCCESS, password)
    return read is not None and read[0] == transaction_id


def _signed(message: bytes, kind: int, password: bytes) -> tuple[bytes, dict[int, bytes]] | None:
    """The transaction id and the attributes before MESSAGE-INTEGRITY of a ``kind`` message signed with
    ``password``, whose FINGERPRINT (if it has one) is right; None for anything else. As aioice's parser does,
    what follows MESSAGE-INTEGRITY (but FINGERPRINT) is ignored: it is not authenticated."""
    if len(message) < 20:
        return None
    message_type, length, cookie, transaction_id = _HEADER.unpack_from(message)
    if message_type != kind or cookie != COOKIE or length + 20 != len(message):
        return None
    attributes: dict[int, bytes] = {}
    integrity_at = -1
    pos = 20
    end = len(message)
    while pos <= end - 4:
        attr_type, attr_len = _ATTRIBUTE.unpack_from(message, pos)
        value_at = pos + 4
        if value_at + attr_len > end:
            return None
        if attr_type == FINGERPRINT:
            if attr_len != 4 or value_at + 4 != end or integrity_at < 0:
                return None
            (fingerprint,) = struct.unpack_from("!I", message, value_at)
            if fingerprint != _fingerprint(message[:pos]):
                return None
        elif integrity_at < 0:
            if attr_type == MESSAGE_INTEGRITY:
                if attr_len != 20:
                    return None
                integrity_at = pos
            else:
                attributes[attr_type] = message[value_at:value_at + attr_len]  # the last one, as aioice's
        pos = value_at + attr_len + (-attr_len % 4)
    if integrity_at < 0:
        return None
    expected = _integrity(message[:integrity_at], password)
    if not hmac.compare_digest(message[integrity_at + 4:integrity_at + 24], expected):
        return None
    return transaction_id, attributes


def _attribute(attr_type: int, value: bytes) -> bytes:
    return _ATTRIBUTE.pack(attr_type, len(value)) + value + bytes(-len(value) % 4)


def _sign(kind: int, transaction_id: bytes, body: bytes, password: bytes) -> bytes:
    # The message, then its MESSAGE-INTEGRITY and FINGERPRINT, the header's length counting both.
    message = _HEADER.pack(kind, len(body), COOKIE, transaction_id) + body
    message += _ATTRIBUTE.pack(MESSAGE_INTEGRITY, 20) + _integrity(message, password)
    message = _with_length(message, len(message) - 20 + 8)
    return message + _ATTRIBUTE.pack(FINGERPRINT, 4) + struct.pack("!I", _fingerprint(message))


def _with_length(data: bytes, length: int) -> bytes:
    return data[:2] + struct.pack("!H", length) + data[4:]


def _integrity(data: bytes, password: bytes) -> bytes:
    # RFC 8489 14.5: the HMAC covers the message up to the attribute, its length counting the attribute.
    return hmac.digest(password, _with_length(data, len(data) - 20 + 24), "sha1")


def _fingerprint(data: bytes) -> int:
    # RFC 8489 14.7: CRC-32 of the message up to the attribute, its length counting the attribute, XOR 0x5354554e.
    return binascii.crc32(_with_length(data, len(data) - 20 + 8)) ^ FINGERPRINT_XOR
