from shop.pricing import line_total, order_total


def test_single_unit_is_the_unit_price():
    assert line_total(1250, 1) == 1250


def test_nine_units_get_no_discount():
    assert line_total(250, 9) == 2250


def test_ten_units_get_bulk_discount():
    # 10 is "10 or more": 2500 - 10% = 2250.
    assert line_total(250, 10) == 2250


def test_more_than_ten_units_get_bulk_discount():
    assert line_total(200, 12) == 2160


def test_bulk_discount_rounds_half_up():
    # 105 * 11 = 1155; the discount 115.5 rounds half up to 116 -> 1039
    # (round(1155 * 0.9) would give 1040).
    assert line_total(105, 11) == 1039
    # 101 * 11 = 1111; the discount 111.1 rounds to 111 -> 1000
    # (float truncation int(1111 * 0.9) would give 999).
    assert line_total(101, 11) == 1000


def test_order_total_sums_lines():
    assert order_total([(1250, 1), (250, 9), (399, 2)]) == 1250 + 2250 + 798


def test_empty_order_is_free():
    assert order_total([]) == 0
