"""``Transaction.snapshot()`` and ``Transaction.from_document()`` are written out by hand for
speed; over any transaction they must stay exactly what the contract's model of that JSON form
gives (``services.contract.outbound.Transaction``: ``model_dump(mode="json")`` with the
currency's minor units, and ``model_validate`` of a stored document), so they never drift."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from services.contract import outbound
from services.domain.money import minor_units
from services.domain.transaction import CampaignPoints, IntentType, Item, Status, Transaction

# Amounts as rules and loads make them, plus the awkward forms a Decimal can take.
amounts = st.one_of(
    st.decimals(min_value=-(10**12), max_value=10**12, allow_nan=False, allow_infinity=False),
    st.decimals(min_value=0, max_value=10**6, places=6),
    st.sampled_from([Decimal("1E+2"), Decimal("-0"), Decimal("0E-10"), Decimal("10.005"), Decimal("2.50")]),
)
optional_text = st.none() | st.text(max_size=12)
# Any offset a timezone can have, seconds and microseconds included, or none (naive).
zones = (
    st.none()
    | st.just(UTC)
    | st.builds(
        timezone,
        st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)),
    )
)
# A day inside datetime's range on either side, so that moving one to another offset cannot
# overflow it (year 1 at +00:00:00.000001 is in year 0 in UTC).
moments = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=zones)
# Free-form values as they arrive (decimals: bodies are parsed with parse_float=Decimal, and
# Infinity or NaN become floats) or come back from storage (floats); integers as the inbound
# contract bounds them (services/contract/inbound.py).
json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.decimals()
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
free_form = st.none() | st.dictionaries(st.text(max_size=6), json_like, max_size=4)
points = st.integers(min_value=0, max_value=10**12)
codes = st.lists(st.text(min_size=1, max_size=6), max_size=3)

items = st.builds(
    Item,
    product_id=optional_text,
    product_name=optional_text,
    product_url=optional_text,
    image_url=optional_text,
    category=optional_text,
    price=st.none() | amounts,
    quantity=amounts,
    discount=st.none() | amounts,
    subtotal=amounts,
    points_rewarded=points,
    points_burned=points,
    refunded_quantity=amounts,
)

transactions = st.builds(
    Transaction,
    program=st.text(max_size=8),
    transaction_id=st.text(max_size=8),
    customer=optional_text,
    guest=st.booleans(),
    status=st.sampled_from(Status),
    type=st.sampled_from(IntentType),
    # Two, none, three and four minor digits, an unknown code, and a draft's empty currency.
    currency=st.sampled_from(["EUR", "JPY", "KWD", "CLF", "XYZ", ""]),
    rate=amounts,
    total=amounts,
    refunded=amounts,
    points_base=points,
    points_bonus=points,
    campaigns=st.lists(st.builds(CampaignPoints, campaign=st.text(max_size=6), points=points), max_size=2),
    points_earned=points,
    points_pending=points,
    points_burned=points,
    points_restored=points,
    points_revoked=points,
    items=st.lists(items, max_size=3),
    coupons=codes,
    offers=codes,
    coupons_unredeemed=codes,
    offers_unredeemed=codes,
    store=optional_text,
    store_details=free_form,
    metadata=free_form,
    utm_data=free_form,
    shares=st.none() | st.dictionaries(st.text(max_size=6), points, max_size=3),
    occurred_at=moments,
    created_at=moments,
    updated_at=moments,
    auto_accept_at=st.none() | moments,
    accepted_at=st.none() | moments,
    rejected_at=st.none() | moments,
    enriched_at=st.none() | moments,
)


@given(transactions)
def test_the_snapshot_is_the_contract_models_json_form(txn: Transaction) -> None:
    # As a registration leaves it too: its moments the very object of the event's time (and
    # one the same instant at another offset, which is not written the same).
    at = txn.occurred_at
    elsewhere = at.astimezone(timezone(timedelta(hours=5))) if at.tzinfo else at
    registered = replace(txn, created_at=at, updated_at=elsewhere, accepted_at=at)
    for drawn in (txn, registered):
        model = outbound.Transaction.model_validate(drawn, from_attributes=True)
        expected = model.model_dump(mode="json", context={"minor_units": minor_units(drawn.currency)})
        # repr: the same keys in the same order, and the same types (str, not an enum or Decimal).
        assert repr(drawn.snapshot()) == repr(expected)


@given(transactions)
def test_a_stored_document_reads_back_as_the_contract_model_reads_it(txn: Transaction) -> None:
    stored = orjson.loads(txn.document())  # as the jsonb codec gives it back
    assert stored == json.loads(json.dumps(txn.snapshot()))
    read = Transaction.from_document(stored)
    assert asdict(read) == outbound.Transaction.model_validate(stored).model_dump()
    # Reading back is a fixed point (from the first copy read: a drawn offset with seconds is
    # written without them, as pydantic writes it, so the first read may differ by those).
    again = Transaction.from_document(orjson.loads(read.document()))
    assert again.document() == read.document()


def test_a_snapshot_is_a_copy_the_transaction_does_not_change() -> None:
    at = datetime(2024, 3, 1, tzinfo=UTC)
    txn = Transaction(
        program="p",
        transaction_id="t",
        customer="c",
        status=Status.accepted,
        currency="EUR",
        total=Decimal(10),
        coupons=["C1"],
        metadata={"tags": ["a"]},
        items=[Item(subtotal=Decimal(10))],
        occurred_at=at,
        created_at=at,
        updated_at=at,
    )
    before = txn.snapshot()
    kept: dict[str, Any] = json.loads(json.dumps(before))
    txn.coupons.append("C2")
    assert txn.metadata is not None
    txn.metadata["tags"].append("b")
    txn.items[0].points_rewarded = 5
    txn.campaigns.append(CampaignPoints(campaign="x", points=1))
    assert before == kept
