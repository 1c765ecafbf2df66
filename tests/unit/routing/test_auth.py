"""The pure parts of routing's authentication and authorization: what a token looks like and
how it is stored, the checks on account fields, reading the `authorization` metadata, and
principal.may_call for every method and caller against the table docs/authorization.md
shows (written out in tests/integration/test_authorization.py, which asserts it over gRPC)."""

from __future__ import annotations

import hashlib

import pytest

from lapor.v1 import routing_pb2
from services.routing import auth
from services.routing.authz import bearer_token
from services.routing.principal import METHODS, Principal, may_call
from services.routing.tickets.statemachine import Role
from tests.integration.test_authorization import CALLERS, EXPECTED


# -- tokens ----------------------------------------------------------------------------------
def test_a_token_is_lpr_and_256_random_bits_url_safe():
    tokens = {auth.new_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert token.startswith("lpr_") and len(token) == 47
        assert auth.looks_like_token(token)
        assert set(token[4:]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                     "0123456789-_")


def test_routing_stores_a_tokens_sha256_and_lists_only_the_start_of_it():
    token = "lpr_" + "A" * 43
    hashed = auth.token_hash(token)
    assert hashed == hashlib.sha256(token.encode()).hexdigest()
    assert len(hashed) == 64 and token not in hashed
    assert auth.token_key(hashed) == "sha256:" + hashed[:12]
    assert auth.token_hash("lpr_" + "A" * 42 + "B") != hashed


@pytest.mark.parametrize("text", [
    "", "lpr_", "lpr_" + "A" * 42, "lpr_" + "A" * 44, "LPR_" + "A" * 43, "abc_" + "A" * 43,
    "lpr_" + "A" * 42 + "=", "lpr_" + "A" * 42 + " ", "lpr_" + "A" * 42 + "é",
    " lpr_" + "A" * 43, "lpr_" + "A" * 43 + "\n",
])
def test_what_is_not_shaped_like_a_token_is_never_looked_up(text):
    assert not auth.looks_like_token(text)


# -- account fields --------------------------------------------------------------------------
@pytest.mark.parametrize("username", ["siti", "siti.pupr", "officer-13.03", "a_b", "x" * 64,
                                      "007"])
def test_usernames_that_are_accepted(username):
    assert auth.check_username(username) == username


@pytest.mark.parametrize(("username", "why"), [
    ("si", "is not valid"), ("x" * 65, "is not valid"), ("Siti", "is not valid"),
    ("siti rahayu", "is not valid"), ("-siti", "is not valid"), (".siti", "is not valid"),
    ("sítí", "is not valid"), ("siti\n", "is not valid"), ("system", "is reserved"),
    ("citizen", "is reserved"),
])
def test_usernames_that_are_refused_say_why(username, why):
    with pytest.raises(auth.AccountError) as raised:
        auth.check_username(username)
    assert why in str(raised.value)
    if why == "is not valid":
        assert "3 to 64 characters, lowercase letters, digits" in str(raised.value)


def test_only_the_account_roles_and_sensible_lifetimes_are_accepted():
    assert [auth.check_role(r.value) for r in (Role.NATIONAL_ADMIN, Role.OVERSIGHT)] == [
        Role.NATIONAL_ADMIN, Role.OVERSIGHT]
    for role in ("citizen", "system", "admin", ""):
        with pytest.raises(auth.AccountError, match="is not one of national_admin"):
            auth.check_role(role)
    assert auth.check_days(1) == 1 and auth.check_days(365) == 365
    for days in (0, -1, 366):
        with pytest.raises(auth.AccountError, match="1 to 365 days"):
            auth.check_days(days)


# -- the authorization metadata --------------------------------------------------------------
def test_the_bearer_token_is_read_from_exactly_one_authorization_value():
    token = "lpr_" + "A" * 43
    assert bearer_token([f"Bearer {token}"]) == token
    assert bearer_token([f"bearer  {token} "]) == token
    assert bearer_token([f"Basic {token}"]) is None
    assert bearer_token([token]) is None
    assert bearer_token(["Bearer "]) is None
    assert bearer_token([f"Bearer {token} extra"]) is None
    assert bearer_token([f"Bearer {token}", f"Bearer {token}"]) is None
    assert bearer_token([]) is None


# -- who may call what -----------------------------------------------------------------------
def test_every_method_of_the_api_has_a_rule():
    served = {m.name for m in routing_pb2.DESCRIPTOR.services_by_name["RoutingService"].methods}
    assert set(METHODS) == served == set(EXPECTED)


@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_may_call_follows_the_documented_table(method):
    """Y and T cells pass the method-level check (T is refused later, for the ticket)."""
    for caller, (username, role, agency) in CALLERS.items():
        principal = Principal(username, Role(role), agency)
        assert may_call(method, principal) == (EXPECTED[method][caller] in "YT"), caller


def test_an_unknown_method_is_refused_to_everyone():
    for username, role, agency in CALLERS.values():
        assert not may_call("DropAllTickets", Principal(username, Role(role), agency))
