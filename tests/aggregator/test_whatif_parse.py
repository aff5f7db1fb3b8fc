"""The what-if's input, without a chain: the command line's syntax, amounts, and which markets a price moves."""

from __future__ import annotations

from decimal import Decimal

import pytest

from aggregator.whatif import Change, WhatIfError, cli_scenario, parse_amount, parse_change, parse_price, price_key


def test_the_issues_example_parses_in_the_command_lines_order() -> None:
    scenario = cli_scenario(["WETH=3000"], supply=["morpho_blue:WETH=2"], repay=["aave_v3:USDC=5000"],
                            withdraw=["aave_v3:WETH=0.5"], borrow=["morpho_blue:USDC@WETH/USDC=1e3"])
    assert scenario.prices == {"WETH": Decimal(3000)}
    assert scenario.changes == (
        Change("supply", "morpho_blue", "WETH", Decimal(2)),
        Change("repay", "aave_v3", "USDC", Decimal(5000)),
        Change("withdraw", "aave_v3", "WETH", Decimal("0.5")),
        Change("borrow", "morpho_blue", "USDC", Decimal(1000), "WETH/USDC"),
    )
    assert str(scenario.changes[3]) == "borrow 1000 USDC on morpho_blue@WETH/USDC"


@pytest.mark.parametrize(("text", "message"), [
    ("-1", "must be positive"), ("0", "must be positive"), ("0.000", "must be positive"), ("abc", "not a number"),
    ("", "not a number"), ("nan", "not a finite number"), ("Infinity", "not a finite number"),
    ("1e31", "too large"), ("1,000", "not a number"),
])
def test_amounts_must_be_positive_finite_numbers(text: str, message: str) -> None:
    with pytest.raises(WhatIfError, match=message):
        parse_amount(text, "amount")


def test_amounts_keep_every_digit_and_floats_their_shortest_form() -> None:
    assert parse_amount("0.000000000000000001", "x") == Decimal("1e-18")
    assert parse_amount(0.1, "x") == Decimal("0.1")
    assert parse_amount(5000, "x") == Decimal(5000)
    with pytest.raises(WhatIfError, match="not a number"):
        parse_amount(True, "x")  # type: ignore[arg-type]


@pytest.mark.parametrize(("action", "text", "message"), [
    ("supply", "WETH=2", "expected VENUE:ASSET"), ("supply", "aave_v3:=2", "expected VENUE:ASSET"),
    ("supply", ":WETH=2", "expected VENUE:ASSET"), ("supply", "aave_v3:WETH", "expected VENUE:ASSET"),
    ("lend", "aave_v3:WETH=1", "unknown action"), ("repay", "aave_v3:USDC=-5", "must be positive"),
])
def test_malformed_changes_say_what_is_expected(action: str, text: str, message: str) -> None:
    with pytest.raises(WhatIfError, match=message):
        parse_change(action, text)


def test_prices_need_a_symbol_and_one_value() -> None:
    assert parse_price(" WETH = 3000.5 ") == ("WETH", Decimal("3000.5"))
    for bad in ("WETH", "=3000", "WETH=", "WETH=-1"):
        with pytest.raises(WhatIfError):
            parse_price(bad)
    with pytest.raises(WhatIfError, match="two prices for WETH"):
        cli_scenario(["WETH=3000", "WETH=3100"])
    assert cli_scenario(["WETH=3000", "WETH=3000"]).prices == {"WETH": Decimal(3000)}


def test_a_price_moves_the_underlying_its_one_to_one_wrappers_and_its_perps_only() -> None:
    assert {price_key(s) for s in ("WETH", "ETH", "ETH-USD", "weth")} == {"ETH"}
    assert price_key("stETH") == "STETH"  # a staked token has a basis: its own price
    assert price_key("WBTC") != price_key("BTC")  # a custodial wrapper too
    assert price_key("USDC") == "USDC"
    assert price_key("FOO") == "FOO"
