"""Coupon rules: assignment, checking and redeeming at checkout, gift cards, giving back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.domain.catalog import (
    Coupon,
    CouponStatus,
    assign_coupon,
    coupons_for_checkout,
    give_back_coupon,
    invalidate_coupon,
    redeem_coupon,
    unredeem_standalone_coupon,
)
from services.domain.effects import Rejected

AT = datetime(2026, 5, 1, tzinfo=UTC)


def coupon(code: str = "C", customer: str = "ann", **fields: object) -> Coupon:
    return Coupon.model_validate({"code": code, "customer": customer, **fields})


def code_of(call: object) -> str:
    with pytest.raises(Rejected) as exc:
        call()  # type: ignore[operator]
    return exc.value.code


def test_assign_keeps_a_code_with_its_customer_and_never_revives_a_redeemed_one() -> None:
    assert assign_coupon(None, coupon()).status is CouponStatus.claimed
    half = coupon(status="partially_redeemed")
    assert assign_coupon(half, coupon(pool="new")).status is CouponStatus.partially_redeemed
    assert code_of(lambda: assign_coupon(coupon(), coupon(customer="bob"))) == "coupon_taken"
    assert code_of(lambda: assign_coupon(coupon(status="redeemed"), coupon())) == "coupon_redeemed"


def test_checkout_redeems_only_usable_coupons_of_its_customer() -> None:
    ok = coupon("OK")
    redeemed = coupons_for_checkout(["OK"], {"OK": ok}, "ann", AT)
    assert [c.status for c in redeemed] == [CouponStatus.redeemed] and ok.status is CouponStatus.claimed
    cases = {
        "unknown_coupon": ({"X": None}, "ann"),
        "coupon_not_owned": ({"X": coupon("X", "bob")}, "ann"),
        "coupon_redeemed": ({"X": coupon("X", status="redeemed")}, "ann"),
        "coupon_expired": ({"X": coupon("X", expires_at=AT.isoformat())}, "ann"),
        "gift_card_needs_amount": ({"X": coupon("X", type="gift_card", balance=10)}, "ann"),
    }
    for expected, (known, customer) in cases.items():
        assert code_of(
            lambda known=known, customer=customer: coupons_for_checkout(["X"], known, customer, AT)
        ) == (expected)
    assert code_of(lambda: coupons_for_checkout(["OK"], {"OK": ok}, None, AT)) == "coupon_not_owned"
    assert code_of(lambda: coupons_for_checkout(["OK", "OK"], {"OK": ok}, "ann", AT)) == "duplicate_coupon"
    later = coupon("L", expires_at=(AT + timedelta(seconds=1)).isoformat())
    assert coupons_for_checkout(["L"], {"L": later}, "ann", AT)[0].status is CouponStatus.redeemed


@given(spends=st.lists(st.decimals(min_value="0.01", max_value=50, places=2), min_size=1, max_size=8))
def test_gift_card_balance_goes_down_until_exhausted(spends: list[Decimal]) -> None:
    card = coupon("G", type="gift_card", value=100, balance=100)
    for amount in spends:
        left = card.balance or Decimal(0)
        if amount > left:
            assert code_of(lambda card=card, amount=amount: redeem_coupon(card, "G", "ann", amount, AT)) in (
                "insufficient_balance",
                "coupon_redeemed",
            )
            continue
        card = redeem_coupon(card, "G", "ann", amount, AT)
        assert card.balance == left - amount
        assert card.status is (
            CouponStatus.redeemed if card.balance == 0 else CouponStatus.partially_redeemed
        )


def test_redeem_and_give_back() -> None:
    assert redeem_coupon(coupon(), "C", "ann", None, AT).status is CouponStatus.redeemed
    assert code_of(lambda: redeem_coupon(coupon(type="gift_card", balance=5), "C", "ann", None, AT)) == (
        "amount_required"
    )
    assert give_back_coupon(coupon(status="redeemed")).status is CouponStatus.claimed
    card = coupon(type="gift_card", value=100, balance=0, status="redeemed")
    partly = give_back_coupon(card, Decimal(30))
    assert (partly.balance, partly.status) == (Decimal(30), CouponStatus.partially_redeemed)
    whole = give_back_coupon(partly, Decimal(70))
    assert (whole.balance, whole.status) == (Decimal(100), CouponStatus.claimed)


def test_an_invalidated_coupon_is_never_usable_again() -> None:
    card = coupon(type="gift_card", value="50", balance="20", status="partially_redeemed")
    gone = invalidate_coupon(card, "C")
    assert gone.status is CouponStatus.invalidated and gone.balance == Decimal(20)
    assert code_of(lambda: redeem_coupon(gone, "C", "ann", Decimal(5), AT)) == "coupon_invalidated"
    assert code_of(
        lambda: coupons_for_checkout(["C"], {"C": invalidate_coupon(coupon(), "C")}, "ann", AT)
    ) == ("coupon_invalidated")
    assert code_of(lambda: assign_coupon(gone, coupon())) == "coupon_invalidated"
    # A give-back (a refund, coupon_unredeem) returns a gift card's amount but not its use.
    back = give_back_coupon(gone, Decimal(30))
    assert (back.status, back.balance) == (CouponStatus.invalidated, Decimal(50))
    assert give_back_coupon(invalidate_coupon(coupon(), "C")).status is CouponStatus.invalidated


def test_only_a_coupon_not_used_up_can_be_invalidated() -> None:
    assert code_of(lambda: invalidate_coupon(None, "C")) == "unknown_coupon"
    assert code_of(lambda: invalidate_coupon(coupon(status="redeemed"), "C")) == "coupon_redeemed"
    assert code_of(lambda: invalidate_coupon(invalidate_coupon(coupon(), "C"), "C")) == "coupon_invalidated"


def test_a_standalone_unredeem_gives_back_what_a_standalone_redeem_spent() -> None:
    card = coupon(type="gift_card", value="50", balance="50", currency="EUR")
    spent = redeem_coupon(card, "C", "ann", Decimal(20), AT)
    back = unredeem_standalone_coupon(spent, "C", "ann", Decimal(20))
    assert (back.balance, back.status) == (Decimal(50), CouponStatus.claimed)
    part = unredeem_standalone_coupon(spent, "C", "ann", Decimal(5))
    assert (part.balance, part.status) == (Decimal(35), CouponStatus.partially_redeemed)
    # Never more than was spent, never without an amount, only by its customer.
    assert code_of(lambda: unredeem_standalone_coupon(spent, "C", "ann", Decimal("20.01"))) == "over_unredeem"
    assert code_of(lambda: unredeem_standalone_coupon(spent, "C", "ann", None)) == "amount_required"
    assert code_of(lambda: unredeem_standalone_coupon(spent, "C", "bob", Decimal(1))) == "coupon_not_owned"
    assert code_of(lambda: unredeem_standalone_coupon(None, "C", "ann", Decimal(1))) == "unknown_coupon"
    # An invalidated gift card gets the amount back, but not its use.
    gone = unredeem_standalone_coupon(invalidate_coupon(spent, "C"), "C", "ann", Decimal(20))
    assert (gone.balance, gone.status) == (Decimal(50), CouponStatus.invalidated)


def test_a_standalone_unredeem_of_another_coupon_makes_it_claimed_again() -> None:
    used = redeem_coupon(coupon(value=5), "C", "ann", None, AT)
    assert unredeem_standalone_coupon(used, "C", "ann", None).status is CouponStatus.claimed
    assert code_of(lambda: unredeem_standalone_coupon(coupon(), "C", "ann", None)) == "coupon_not_redeemed"
    assert code_of(lambda: unredeem_standalone_coupon(used, "C", "ann", Decimal(5))) == "not_a_gift_card"
    invalid = invalidate_coupon(coupon(), "C")
    assert code_of(lambda: unredeem_standalone_coupon(invalid, "C", "ann", None)) == "coupon_invalidated"


@given(st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=8))
def test_standalone_redeems_then_unredeems_restore_the_card(spends: list[int]) -> None:
    card = coupon(type="gift_card", value="100", balance="100")
    spent: list[Decimal] = []
    for amount in (Decimal(n).scaleb(-2) for n in spends):
        if amount > (card.balance or 0):
            break
        card = redeem_coupon(card, "C", "ann", amount, AT)
        spent.append(amount)
    for amount in reversed(spent):
        card = unredeem_standalone_coupon(card, "C", "ann", amount)
    assert (card.balance, card.status) == (Decimal(100), CouponStatus.claimed)
    assert code_of(lambda: unredeem_standalone_coupon(card, "C", "ann", Decimal("0.01"))) == "over_unredeem"
