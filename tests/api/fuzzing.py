"""What the fuzz tests share: one seed (fixed in CI, printed always), bounded example counts, and the
hostile values they throw (deep nesting, huge and odd numbers, lone surrogates, wrong types, huge strings).

``SOULSEER_FUZZ_SEED=<n> pytest tests/api/test_fuzz_rest.py`` replays a run; CI (``CI=true``) always uses 0.
``SOULSEER_FUZZ_EXAMPLES=<n>`` runs more (or fewer) examples than the bounded default, for a long hunt.
"""

from __future__ import annotations

import functools
import os
import random
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st

SEED = int(os.environ.get("SOULSEER_FUZZ_SEED") or (0 if os.environ.get("CI") else random.randrange(2**32)))
F = TypeVar("F", bound=Callable[..., Any])


def fuzz(max_examples: int) -> Callable[[F], F]:
    """Hypothesis settings for a fuzz test: ``max_examples`` (bounded for CI time), the run's seed, no
    deadline (a loaded 2-core machine), and one app shared by all examples (a function-scoped fixture)."""

    def apply(test: F) -> F:
        examples = int(os.environ.get("SOULSEER_FUZZ_EXAMPLES") or max_examples)
        configured = settings(max_examples=examples, deadline=None, print_blob=True,
                              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                     HealthCheck.data_too_large, HealthCheck.filter_too_much])
        return seed(SEED)(configured(test))  # type: ignore[return-value]

    return apply


@functools.cache
def announce(what: str) -> str:
    """The line a fuzz test prints once (pytest shows it with a failure) and puts in its assertion messages."""
    line = f"{what}: hypothesis seed {SEED} (replay with SOULSEER_FUZZ_SEED={SEED})"
    print(line)  # the seed must be visible in a failing run's captured output
    return line


surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
odd_text = st.one_of(
    st.text(max_size=30),
    st.text(max_size=10).map(lambda s: s + "\x00"),
    st.lists(st.one_of(surrogates, st.characters()), min_size=1, max_size=6).map("".join),
    st.sampled_from(["", " ", "\u202e", "\ufeff", "../../etc/passwd", "'; DROP TABLE users; --", "%00", "NaN",
                     "null", "true", "-1", "1e309", "0x10", "\U0001f600"]),
    st.integers(1, 70_000).map(lambda n: "x" * n),
)
odd_numbers = st.one_of(
    st.integers(-(2**70), 2**70), st.sampled_from([0, -1, 1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
)
scalars = st.one_of(st.none(), odd_numbers, odd_text, st.uuids().map(str))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(odd_text, inner, max_size=4),
    max_leaves=12,
)


def nested() -> st.SearchStrategy[str]:
    """Raw JSON text nested 10 to 3000 deep (arrays or objects), valid apart from its depth."""
    return st.tuples(st.integers(10, 3000), st.booleans()).map(
        lambda d: ("[" * d[0] + "]" * d[0]) if d[1] else ('{"a":' * d[0] + "1" + "}" * d[0]))


def huge_int_text() -> st.SearchStrategy[str]:
    """A number too long for Python's int conversion (4300 digits), where JSON allows any length."""
    return st.integers(4301, 6000).map(lambda n: "9" * n)


def random_uuid() -> str:
    return str(uuid.uuid4())
