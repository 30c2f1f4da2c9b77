"""``wire.check_request``: the decoded twin matches the contract's message, identifiers are
held to the pattern by :class:`KnownIdentifiers` exactly as msgspec held them."""

from __future__ import annotations

import sys

import msgspec
import pytest

from risk_worker.errors import InvalidMessageError
from risk_worker.wire import check_request, inbound, ticks
from risk_worker.wire.check_request import CheckRequestFields, CheckRequestMsg, KnownIdentifiers

IDENTIFIER_FIELDS = ("symbol", "account_id", "account", "strategy_id")
VALID = {"order_id": "o-1", "account_id": "A1", "symbol": "BTC-USD", "side": "BUY", "quantity": 1}


def _schema(cls: type[msgspec.Struct]) -> dict[str, object]:
    (_, defs) = msgspec.json.schema_components([cls])
    return defs[cls.__name__]


def test_twin_when_compared_then_same_fields_defaults_and_bounds_but_the_pattern() -> None:
    contract = msgspec.structs.fields(CheckRequestMsg)
    twin = msgspec.structs.fields(CheckRequestFields)
    assert [(f.name, f.default) for f in contract] == [(f.name, f.default) for f in twin]
    schema, twin_schema = _schema(CheckRequestMsg), _schema(CheckRequestFields)
    properties = schema["properties"]
    assert isinstance(properties, dict)
    for name in IDENTIFIER_FIELDS:  # the contract's pattern, checked by KnownIdentifiers
        text = msgspec.json.encode(properties[name]).decode()
        assert check_request.IDENTIFIER_PATTERN in text.replace("\\\\", "\\")
        properties[name] = twin_schema["properties"][name]  # type: ignore[index]
    ignored = {"title": None, "description": None}
    assert {**schema, **ignored} == {**twin_schema, **ignored}


BAD_IDENTIFIERS = ["", "a.b", "a b", "x" * 65, "é", "a*", ">", "a\n"]


@pytest.mark.parametrize("field", IDENTIFIER_FIELDS)
@pytest.mark.parametrize("value", BAD_IDENTIFIERS)
def test_parse_when_identifier_bad_then_same_error_as_the_contract_decoder(
    field: str, value: str
) -> None:
    data = msgspec.json.encode({**VALID, field: value})
    with pytest.raises(msgspec.ValidationError) as contract:
        msgspec.json.decode(data, type=CheckRequestMsg)
    with pytest.raises(InvalidMessageError) as caught:
        check_request.parse_check(data, 65_536)
    assert (caught.value.field, caught.value.reason) == (field, "bad_identifier")
    assert caught.value.detail == str(contract.value)


@pytest.mark.parametrize("value", ["A", "x" * 64, "a-b_c/d=e", "0"])
def test_parse_when_identifier_good_then_accepted_and_remembered(value: str) -> None:
    data = msgspec.json.encode({**VALID, "symbol": value, "strategy_id": value})
    msgspec.json.decode(data, type=CheckRequestMsg)  # the contract accepts it too
    order = check_request.parse_check(data, 65_536)
    assert order.symbol == value and order.strategy_id == value
    assert check_request.KNOWN.check(value, "symbol") == value


def test_known_when_a_bad_value_was_refused_then_it_is_not_remembered() -> None:
    known = KnownIdentifiers()
    with pytest.raises(InvalidMessageError):
        known.check("a.b", "symbol")
    assert len(known) == 0
    with pytest.raises(InvalidMessageError):
        known.check("a.b", "symbol")


def test_known_when_full_then_forgets_all_and_keeps_checking() -> None:
    known = KnownIdentifiers(limit=3)
    for value in ("a", "b", "c"):
        known.check(value, "symbol")
    assert len(known) == 3
    known.check("d", "symbol")
    assert len(known) == 1
    with pytest.raises(InvalidMessageError):
        known.check("d.e", "symbol")


def test_parse_when_ids_repeat_on_every_path_then_one_string_object_each() -> None:
    symbol, account = "".join(["IDN", "TEST"]), "".join(["ACC", "IDN"])  # not interned yet
    order = check_request.parse_check(
        msgspec.json.encode({**VALID, "symbol": symbol, "account_id": account}), 65_536
    )
    position = inbound.parse_position(
        msgspec.json.encode(
            {
                "account_id": account,
                "symbol": symbol,
                "quantity": 1,
                "entry_price": 2,
                "timestamp": 1,
            }
        )
    )
    tick_symbol, _, _ = ticks.parse_tick(b'{"price": 3}', f"market.tick.{symbol}")
    assert order.symbol is position.symbol is tick_symbol is sys.intern(symbol)
    assert order.account_id is position.account_id is sys.intern(account)
