"""Holdings: per-user and per-address ceilings on what is held at once, forgetting what let go by itself."""

from __future__ import annotations

import pytest

from api.core.caps import Holdings
from api.core.errors import TooManyRequests


def test_a_user_and_an_address_each_have_their_own_ceiling() -> None:
    caps = Holdings(per_user=2, per_address=3, what="things", code="too_many")
    caps.claim("a1", "ann", "10.0.0.1")
    caps.claim("a2", "ann", "10.0.0.1")
    caps.claim("a2", "ann", "10.0.0.1")  # held already: no second place
    with pytest.raises(TooManyRequests) as refused:
        caps.claim("a3", "ann", "10.0.0.2")
    assert refused.value.code == "too_many" and refused.value.status == 429
    caps.claim("b1", "bob", "10.0.0.1")
    with pytest.raises(TooManyRequests):
        caps.claim("c1", "cat", "10.0.0.1")
    caps.claim("c1", "cat", "10.0.0.9")
    caps.release("a1")
    caps.claim("a3", "ann", "10.0.0.1")
    assert caps.held(user_id="ann") == 2 and caps.held(address="10.0.0.1") == 3


def test_items_that_let_go_are_not_counted_but_one_being_claimed_is() -> None:
    alive = {"p1": True, "p2": True}
    caps = Holdings(per_user=2, per_address=None, what="connections", code="too_many",
                    alive=lambda item: alive.get(item, False))
    with caps.holding("p1", "ann", "a"):
        assert caps.held(user_id="ann") == 1  # not known to be alive yet, but being set up
    caps.claim("p2", "ann", "a")
    with pytest.raises(TooManyRequests):
        caps.claim("p3", "ann", "a")
    alive["p1"], alive["p3"] = False, True  # its connection failed; the next one is set up
    caps.claim("p3", "ann", "a")
    assert caps.held(user_id="ann") == 2


def test_a_claim_that_fails_gives_its_place_back() -> None:
    caps = Holdings(per_user=1, per_address=None, what="connections", code="too_many")
    with pytest.raises(RuntimeError), caps.holding("p1", "ann", "a"):
        raise RuntimeError("the relay refused")
    caps.claim("p2", "ann", "a")
