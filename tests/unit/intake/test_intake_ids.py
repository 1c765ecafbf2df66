"""Tracking ids a citizen reads aloud, types on a phone or copies from an SMS, and the
per-report access token that lets them see their own report."""

from __future__ import annotations

import collections
import random
import re
import string

import pytest

from services.intake import ids

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
SHAPE = re.compile(rf"^LPR-[{CROCKFORD}]{{3}}-[{CROCKFORD}]{{3}}-[{CROCKFORD}]{{3}}$")


def _chars(tracking_id: str) -> str:
    """The nine characters after the prefix (payload and check character)."""
    return tracking_id.removeprefix("LPR-").replace("-", "")


def _display(chars: str) -> str:
    return f"LPR-{chars[0:3]}-{chars[3:6]}-{chars[6:9]}"


def _with_check(payload: str) -> str:
    """A valid id over a chosen payload, so tests can put 0s and 1s where they want them."""
    return _display(payload + ids.check_char(payload))


@pytest.fixture(scope="module")
def sample_ids() -> list[str]:
    return [ids.new_tracking_id() for _ in range(300)]


# --- generated ids ----------------------------------------------------------


def test_generated_ids_have_the_printed_shape_and_validate(sample_ids):
    for tracking_id in sample_ids:
        assert SHAPE.match(tracking_id), tracking_id
        assert ids.normalise_tracking_id(tracking_id) == tracking_id


def test_generated_ids_never_contain_letters_people_confuse(sample_ids):
    for tracking_id in sample_ids:
        assert not set(_chars(tracking_id)) & set("ILOU"), tracking_id


def test_generated_ids_use_the_whole_alphabet_and_do_not_repeat():
    drawn = [ids.new_tracking_id() for _ in range(2000)]
    assert len(set(drawn)) == len(drawn)
    used = set("".join(_chars(t)[:-1] for t in drawn))
    assert used == set(CROCKFORD)


def test_every_character_is_drawn_equally_often():
    """No character is likelier than another (a biased draw makes ids easier to guess and
    collisions likelier): 20,000 ids, 160,000 random characters, each character expected
    5,000 times (standard deviation 70); a modulo bias of 9/256 against 8/256 would put some
    characters 625 above that."""
    drawn = [_chars(ids.new_tracking_id())[:-1] for _ in range(20_000)]
    for position in range(ids.RANDOM_CHARS):
        assert {chars[position] for chars in drawn} == set(CROCKFORD), position
    counts = collections.Counter("".join(drawn))
    assert all(4_650 < n < 5_350 for n in counts.values()), counts


# --- typos are caught -------------------------------------------------------


def test_every_single_character_substitution_is_rejected(sample_ids):
    accepted = []
    for tracking_id in sample_ids[:40]:
        chars = _chars(tracking_id)
        for position in range(len(chars)):
            for replacement in CROCKFORD:
                if replacement == chars[position]:
                    continue
                typo = chars[:position] + replacement + chars[position + 1:]
                if ids.normalise_tracking_id(_display(typo)) is not None:
                    accepted.append((tracking_id, _display(typo)))
    assert accepted == [], f"typos accepted as valid ids: {accepted[:5]}"


def test_adjacent_transpositions_are_mostly_rejected():
    rng = random.Random(1708)
    caught = swapped = 0
    for _ in range(2000):
        payload = "".join(rng.choice(CROCKFORD) for _ in range(8))
        chars = payload + ids.check_char(payload)
        for i in range(len(chars) - 1):
            if chars[i] == chars[i + 1]:
                continue  # swapping equal characters is not a mistake
            swapped += 1
            typo = chars[:i] + chars[i + 1] + chars[i] + chars[i + 2:]
            if ids.normalise_tracking_id(_display(typo)) is None:
                caught += 1
    assert swapped > 10_000
    assert caught / swapped >= 0.90, f"only {caught / swapped:.1%} of swapped pairs caught"


@pytest.mark.parametrize("text", [
    "", "   ", "LPR", "LPR-123-456-78", "LPR-123-456-7890", "LPR-ABC-DEF-GH!", "not an id at all",
    "LPR-UUU-UUU-UUU",
])
def test_things_that_are_not_ids_are_rejected(text):
    assert ids.normalise_tracking_id(text) is None


def test_none_is_rejected_not_crashed_on():
    assert ids.normalise_tracking_id(None) is None


# --- what people actually type is accepted ----------------------------------


@pytest.fixture(scope="module")
def id_with_zeros_and_ones() -> str:
    return _with_check("10A1B0C1")


def test_fixture_id_is_valid(id_with_zeros_and_ones):
    assert ids.normalise_tracking_id(id_with_zeros_and_ones) == id_with_zeros_and_ones


@pytest.mark.parametrize("typed", [
    lambda t: t.lower(),
    lambda t: t.replace("-", ""),
    lambda t: t.removeprefix("LPR-"),
    lambda t: t.removeprefix("LPR-").replace("-", "").lower(),
    lambda t: t.replace("-", " "),
    lambda t: f"  {t}\n",
    lambda t: t.replace("0", "O"),
    lambda t: t.replace("0", "o").lower(),
    lambda t: "LPR-" + t.removeprefix("LPR-").replace("1", "I"),
    lambda t: "LPR-" + t.removeprefix("LPR-").replace("1", "L"),
    lambda t: "lpr" + t.removeprefix("LPR-").replace("1", "l").replace("0", "o").lower(),
], ids=["lower", "no-dashes", "no-prefix", "bare-lower", "spaces", "padded", "O-for-0",
        "o-for-0-lower", "I-for-1", "L-for-1", "everything-at-once"])
def test_common_ways_of_typing_an_id_are_canonicalised(id_with_zeros_and_ones, typed):
    text = typed(id_with_zeros_and_ones)
    assert text != id_with_zeros_and_ones
    assert ids.normalise_tracking_id(text) == id_with_zeros_and_ones


def test_confusable_letters_are_read_as_digits_before_the_check(id_with_zeros_and_ones):
    # A citizen who reads "O" off a blurry SMS gets their own report, not "invalid id".
    chars = _chars(id_with_zeros_and_ones)
    typed = chars.replace("0", "O").replace("1", "I")
    assert set("OI") <= set(typed)
    assert ids.normalise_tracking_id(typed) == id_with_zeros_and_ones


# --- access tokens ----------------------------------------------------------


def test_access_tokens_are_unguessable_and_url_safe():
    tokens = {ids.new_access_token() for _ in range(500)}
    assert len(tokens) == 500
    url_safe = set(string.ascii_letters + string.digits + "-_")
    for token in tokens:
        assert len(token) >= 22  # at least 128 bits of randomness in base64
        assert set(token) <= url_safe, token


def test_token_hash_is_not_the_token_and_is_stable():
    token = ids.new_access_token()
    stored = ids.hash_token(token)
    assert token not in stored
    assert re.fullmatch(r"[0-9a-f]{64}", stored)
    assert ids.hash_token(token) == stored
    assert ids.hash_token(ids.new_access_token()) != stored


def test_only_the_right_token_matches_the_stored_hash():
    token = ids.new_access_token()
    stored = ids.hash_token(token)
    assert ids.token_matches(token, stored)
    assert not ids.token_matches(ids.new_access_token(), stored)
    one_off = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert not ids.token_matches(one_off, stored)
    assert not ids.token_matches("", stored)
    assert not ids.token_matches(stored, stored)  # a leaked hash is not a token


def test_token_comparison_is_constant_time(monkeypatch):
    # A byte-by-byte == would let an attacker find a report's hash by timing GET requests.
    calls = []
    real = ids.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(ids.hmac, "compare_digest", spy)
    token = ids.new_access_token()
    assert ids.token_matches(token, ids.hash_token(token))
    assert calls == [(ids.hash_token(token), ids.hash_token(token))]
