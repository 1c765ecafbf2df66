"""Which channel a reporter's notice goes on, and the fallback order (services/notify/reach)."""

import pytest

from services.notify import reach, store
from services.notify.store import Contact

PHONE, EMAIL = "+6281234567890", "siti@example.id"


def contact(channel="", email=EMAIL, phone=PHONE):
    return Contact("LPR-1", "Siti", email, phone, "id", False, channel)


@pytest.mark.parametrize("channel, email, phone, order", [
    ("sms", EMAIL, PHONE, ("sms", "email")),
    ("whatsapp", EMAIL, PHONE, ("whatsapp", "email", "sms")),
    ("whatsapp", "", PHONE, ("whatsapp", "sms")),
    ("web", EMAIL, PHONE, ("email", "sms")),
    ("open311", EMAIL, "", ("email",)),
    ("mobile", "", PHONE, ("sms",)),
    ("", EMAIL, PHONE, ("email", "sms")),  # registered before channels existed
    ("sms", EMAIL, "", ("email",)),        # no number to answer on
    ("web", "", "", ()),
])
def test_the_channel_used_first_then_email_then_sms(channel, email, phone, order):
    assert reach.channel_order(contact(channel, email, phone)) == order


def test_an_unknown_contact_waits_on_email():
    assert reach.channel_order(None) == ()
    assert reach.first_channel(None) == "email"
    assert reach.first_channel(contact("web", "", "")) == "email"


def test_the_fallback_is_the_next_usable_channel_not_yet_tried():
    who = contact("whatsapp")
    assert reach.next_channel(who, {"whatsapp"}, lambda ch: True) == "email"
    assert reach.next_channel(who, {"whatsapp", "email"}, lambda ch: True) == "sms"
    assert reach.next_channel(who, {"whatsapp"}, lambda ch: ch != "email") == "sms"
    assert reach.next_channel(who, {"whatsapp", "email", "sms"}, lambda ch: True) is None


@pytest.mark.parametrize("raw", ["+6281234567890", "081234567890", "6281234567890",
                                 "+62 812-3456-7890", "0812 3456 7890"])
def test_numbers_written_any_way_are_one_number(raw):
    assert store.e164(raw) == PHONE
    assert store.phone_hash(raw) == store.phone_hash(PHONE)
    assert PHONE not in store.phone_hash(raw) and "81234567890" not in store.phone_hash(raw)
