"""Which channel a reporter's notice goes on, and where it goes next when that one fails.

A notice goes to ONE channel: the one the reporter used when they gave a contact for it
(they wrote to 1708 by SMS or on WhatsApp: their phone, on that channel), else email, else
SMS to the phone they gave. When a delivery fails for good or cannot be made (no gateway
configured, the number opted out, no address), the same notice goes once on the next of
these channels that can be used: after WhatsApp comes email, then SMS to the same number;
after SMS, email. A number reached us through SMS, not necessarily WhatsApp, so an SMS
reporter's notices never go to WhatsApp."""

from __future__ import annotations

from collections.abc import Callable, Collection

from services.notify.store import Contact

EMAIL, SMS, WHATSAPP = "email", "sms", "whatsapp"
PHONE_CHANNELS = (SMS, WHATSAPP)


def channel_order(contact: Contact | None) -> tuple[str, ...]:
    """The reporter's channels, most wanted first; () when they gave no contact at all."""
    if contact is None:
        return ()
    order: list[str] = []
    if contact.channel in PHONE_CHANNELS and contact.phone:
        order.append(contact.channel)
    if contact.email:
        order.append(EMAIL)
    if contact.phone and SMS not in order:
        order.append(SMS)
    return tuple(order)


def first_channel(contact: Contact | None) -> str:
    """The channel a reporter's notice is created on; email (which then waits for, or skips
    without, an address) when the contact is not known yet or has nothing."""
    order = channel_order(contact)
    return order[0] if order else EMAIL


def next_channel(contact: Contact | None, tried: Collection[str],
                 usable: Callable[[str], bool]) -> str | None:
    """The fallback after the channels in `tried`: the next one in the reporter's order not
    yet tried that can be used now; None when there is none."""
    for channel in channel_order(contact):
        if channel not in tried and usable(channel):
            return channel
    return None
