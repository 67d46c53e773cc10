"""Entities: the things features describe, and the key column that identifies them.

The join key is the column name in the raw event tables (events/contracts.py), in the
offline feature tables and in the online store keys, so one name joins them all.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from features.definitions.names import Name


class Entity(BaseModel):
    """A keyed thing (account, device, ...); ``join_key`` is its column everywhere."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    join_key: Name
    description: str = ""


ACCOUNT = Entity(name="account", join_key="account_id", description="A customer account.")
DEVICE = Entity(name="device", join_key="device_id", description="A device fingerprint seen at login or payment.")
IP = Entity(name="ip", join_key="ip", description="A client IP address.")
COUNTERPARTY = Entity(name="counterparty", join_key="counterparty_id",
                      description="The receiving side of a P2P transfer or payment.")
PAYMENT_METHOD = Entity(name="payment_method", join_key="payment_method_id",
                        description="A card or bank instrument attached to accounts.")

ENTITIES: dict[str, Entity] = {e.name: e for e in (ACCOUNT, DEVICE, IP, COUNTERPARTY, PAYMENT_METHOD)}
