"""relay/stun.py answers a consent check byte for byte as aioice does, and leaves every other message to aioice."""

from __future__ import annotations

import struct

import pytest
from aioice import stun
from hypothesis import given
from hypothesis import strategies as st

from relay.stun import answer_binding, binding_request, is_binding_success

LOCAL, REMOTE, PASSWORD = "loca", "remo", b"the-local-password-of-22+"


def check(*, username: str = f"{LOCAL}:{REMOTE}", key: bytes = PASSWORD, controlling: bool = False,
          nominate: bool = False, method: stun.Method = stun.Method.BINDING,
          message_class: stun.Class = stun.Class.REQUEST) -> stun.Message:
    """A check as aioice's Connection.build_request makes it (the peer is the controlling agent unless told)."""
    request = stun.Message(message_method=method, message_class=message_class)
    request.attributes["USERNAME"] = username
    request.attributes["PRIORITY"] = 1853824767
    if controlling:
        request.attributes["ICE-CONTROLLED"] = 0x1234567890
    else:
        request.attributes["ICE-CONTROLLING"] = 0x1234567890
        if nominate:
            request.attributes["USE-CANDIDATE"] = None
    request.add_message_integrity(key)
    return request


def aioices_answer(request: stun.Message, addr: tuple[str, int]) -> bytes:
    # aioice 0.13 Connection.request_received's response.
    response = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.RESPONSE,
                            transaction_id=request.transaction_id)
    response.attributes["XOR-MAPPED-ADDRESS"] = addr
    response.add_message_integrity(PASSWORD)
    return bytes(response)


def answer(data: bytes, addr: tuple[str, int] = ("192.0.2.7", 50123), *, controlling: bool = False,
           remote: str | None = REMOTE) -> bytes | None:
    return answer_binding(data, addr, local_ufrag=LOCAL, remote_ufrag=remote, password=PASSWORD,
                          controlling=controlling)


@pytest.mark.parametrize("addr", [("192.0.2.7", 50123), ("2001:db8::42", 9), ("127.0.0.1", 65535)])
@pytest.mark.parametrize("controlling", [False, True])
def test_a_consent_check_is_answered_byte_for_byte_as_aioice_answers_it(addr: tuple[str, int],
                                                                          controlling: bool) -> None:
    request = check(controlling=controlling)
    response = answer(bytes(request), addr, controlling=controlling)
    assert response == aioices_answer(request, addr)
    parsed = stun.parse_message(response)
    assert parsed.attributes["XOR-MAPPED-ADDRESS"] == addr and parsed.check_message_integrity(PASSWORD)


def test_a_remote_ufrag_not_known_yet_is_not_checked_as_aioice_does_not() -> None:
    assert answer(bytes(check(username=f"{LOCAL}:anyone")), remote=None) is not None


@pytest.mark.parametrize("request_bytes", [
    pytest.param(bytes(check(key=b"another password")), id="wrong integrity"),
    pytest.param(bytes(check(username=f"other:{REMOTE}")), id="not our ufrag"),
    pytest.param(bytes(check(username=f"{LOCAL}:other")), id="not their ufrag"),
    pytest.param(bytes(check(username=LOCAL)), id="no colon"),
    pytest.param(bytes(check(nominate=True)), id="a nomination"),
    pytest.param(bytes(check(controlling=True)), id="a role conflict"),  # we are controlled; so is the peer
    pytest.param(bytes(check(message_class=stun.Class.INDICATION)), id="an indication"),
    pytest.param(bytes(check())[:-1], id="truncated"),
    pytest.param(bytes(check())[:-8], id="no fingerprint"),
    pytest.param(bytes(check())[:-32], id="no integrity"),
    pytest.param(bytes(check())[:-4] + b"\0\0\0\0", id="wrong fingerprint"),
    pytest.param(b"\x00\x01\x00\x00" + b"\0" * 16, id="a wrong cookie"),
    pytest.param(b"\x00\x01", id="two bytes"),
])
def test_anything_but_a_valid_plain_check_is_left_to_aioice(request_bytes: bytes) -> None:
    assert answer(request_bytes) is None


def test_a_request_without_a_fingerprint_is_answered_as_aioice_accepts_it() -> None:
    request = check()
    del request.attributes["FINGERPRINT"]
    assert answer(bytes(request)) == aioices_answer(request, ("192.0.2.7", 50123))


def test_attributes_after_the_integrity_are_ignored_as_aioice_ignores_them() -> None:
    data = bytes(check())
    body = data[20:-8] + struct.pack("!HH", 0x0025, 0)  # a USE-CANDIDATE nobody authenticated
    request = data[:2] + struct.pack("!H", len(body)) + data[4:20] + body
    assert answer(request) is not None


@given(st.binary(max_size=120))
def test_any_bytes_are_answered_or_left_to_aioice_and_never_raise(data: bytes) -> None:
    assert answer(b"\x00\x01" + data) is None or data
    assert answer(bytes(check())[:20] + data) is None or data


@pytest.mark.parametrize("controlling", [True, False])
def test_a_consent_check_is_made_byte_for_byte_as_aioice_makes_it(controlling: bool) -> None:
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    request.attributes["USERNAME"] = f"{REMOTE}:{LOCAL}"  # aioice 0.13 Connection.build_request(nominate=False)
    request.attributes["PRIORITY"] = 1853824767
    request.attributes["ICE-CONTROLLING" if controlling else "ICE-CONTROLLED"] = 0x1234567890ABCDEF
    request.add_message_integrity(PASSWORD)
    made = binding_request(request.transaction_id, username=f"{REMOTE}:{LOCAL}", password=PASSWORD,
                           priority=1853824767, controlling=controlling, tie_breaker=0x1234567890ABCDEF)
    assert made == bytes(request)


def test_only_a_signed_success_for_the_check_counts_as_its_answer() -> None:
    request = check()
    success = aioices_answer(request, ("192.0.2.7", 50123))
    assert is_binding_success(success, request.transaction_id, PASSWORD)
    assert not is_binding_success(success, b"\x00" * 12, PASSWORD), "another check's answer"
    assert not is_binding_success(success, request.transaction_id, b"another password")
    assert not is_binding_success(success[:-8], request.transaction_id, b"another password")
    assert is_binding_success(success[:-8][:2] + struct.pack("!H", len(success) - 28) + success[4:-8],
                              request.transaction_id, PASSWORD), "a success without FINGERPRINT is one"
    error = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.ERROR,
                         transaction_id=request.transaction_id)
    error.attributes["ERROR-CODE"] = (487, "Role Conflict")
    error.add_message_integrity(PASSWORD)
    assert not is_binding_success(bytes(error), request.transaction_id, PASSWORD), "an error is aioice's"
    assert not is_binding_success(bytes(request), request.transaction_id, PASSWORD), "a request is not an answer"
