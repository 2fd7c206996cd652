"""Order pricing.

Business rules:

- Money is always integer cents; never use floats for money.
- A line of 10 or more units (``qty >= BULK_THRESHOLD``) gets 10% off that
  line. The discount is rounded half up to the cent, computed in integers as
  ``(total * BULK_DISCOUNT_PERCENT + 50) // 100``.
- An order's total is the sum of its line totals.
"""

BULK_THRESHOLD = 10
BULK_DISCOUNT_PERCENT = 10


def line_total(price_cents: int, qty: int) -> int:
    """Return the total in cents for ``qty`` units at ``price_cents`` each.

    Lines of 10 or more units get 10% off the line, rounded half up to the cent.
    """
    total = price_cents * qty
    if qty > BULK_THRESHOLD:
        total -= (total * BULK_DISCOUNT_PERCENT + 50) // 100
    return total


def order_total(lines: list[tuple[int, int]]) -> int:
    """Return the total in cents for ``(price_cents, qty)`` lines."""
    return sum(line_total(price_cents, qty) for price_cents, qty in lines)
