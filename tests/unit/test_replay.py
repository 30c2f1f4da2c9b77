"""Reading recorded market data into ticks: both CSV layouts, mapping, filters and errors."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from risk_worker.devstack.replay import ReplayTick, parse_symbol_map, read_ticks

TRADES_HEADER = "trade_time_ms,event_time_ms,local_recv_ns,symbol,trade_id,price,qty,is_buyer_maker"
BARS_HEADER = "ts_utc,exchange,symbol,open,high,low,close,volume"
SEPT_4_2017_MS = 1_504_483_200_000
DAY_MS = 86_400_000


def write_csv(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "data.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def trade(ms: int, symbol: str, price: str) -> str:
    return f"{ms},{ms + 1},{ms * 1_000_000},{symbol},1,{price},0.01,true"


def test_read_ticks_when_trades_then_one_tick_per_trade_sorted_by_trade_time(
    tmp_path: Path,
) -> None:
    path = write_csv(
        tmp_path,
        TRADES_HEADER,
        trade(2000, "ETHUSDT", "2683.8"),
        trade(1000, "BTCUSDT", "61837.63"),
        trade(2000, "BTCUSDT", "61837.64"),
    )

    assert read_ticks(path) == [
        ReplayTick("BTCUSDT", 61837.63, 1000),
        ReplayTick("ETHUSDT", 2683.8, 2000),
        ReplayTick("BTCUSDT", 61837.64, 2000),
    ]


def test_read_ticks_when_bars_then_close_price_at_bar_start_in_utc(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        BARS_HEADER,
        "2017-09-04T00:01:00Z,coinbase,ETHUSD,353.0,353.2,352.9,353.14,10.5",
        "2017-09-04T00:00:00Z,coinbase,ETHUSD,354.88,354.88,354.84,353.1,50.3",
    )

    assert read_ticks(path) == [
        ReplayTick("ETHUSD", 353.1, SEPT_4_2017_MS),
        ReplayTick("ETHUSD", 353.14, SEPT_4_2017_MS + 60_000),
    ]


def test_read_ticks_when_symbol_map_and_filters_then_maps_before_filtering(
    tmp_path: Path,
) -> None:
    path = write_csv(
        tmp_path,
        BARS_HEADER,
        "2017-09-03T23:59:00Z,coinbase,ETHUSD,1,1,1,340.0,1",
        "2017-09-04T00:00:00Z,coinbase,ETHUSD,1,1,1,353.1,1",
        "2017-09-04T00:00:00Z,coinbase,BTCUSD,1,1,1,4626.05,1",
        "2017-09-05T00:00:00Z,coinbase,ETHUSD,1,1,1,316.0,1",
    )

    ticks = read_ticks(
        path,
        symbol_map={"ETHUSD": "ETHUSDT"},
        symbols={"ETHUSDT"},
        start_ms=SEPT_4_2017_MS,
        end_ms=SEPT_4_2017_MS + DAY_MS,
    )

    assert ticks == [ReplayTick("ETHUSDT", 353.1, SEPT_4_2017_MS)]


def test_read_ticks_when_header_unknown_then_names_expected_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "local_recv_ns,symbol,update_id,bid_price", "1,BTCUSDT,2,3")

    with pytest.raises(ValueError, match=r"line 1: unrecognised header") as info:
        read_ticks(path)

    assert str(path) in str(info.value)
    assert "symbol,price,trade_time_ms" in str(info.value)
    assert "ts_utc,symbol,close" in str(info.value)


@pytest.mark.parametrize(
    ("row", "column"),
    [
        (trade(1000, "BTCUSDT", "0"), "price"),
        (trade(1000, "BTCUSDT", "-61837.63"), "price"),
        (trade(1000, "BTCUSDT", "nan"), "price"),
        (trade(1000, "BTCUSDT", "inf"), "price"),
        (trade(1000, "BTCUSDT", "abc"), "price"),
        (trade(1000, "BTCUSDT", ""), "price"),
        ("12:00,1,1,BTCUSDT,1,61837.63,0.01,true", "trade_time_ms"),
        (trade(1000, "", "61837.63"), "symbol"),
        (trade(1000, "BTC.USDT", "61837.63"), "symbol"),
    ],
)
def test_read_ticks_when_row_malformed_then_names_file_line_and_column(
    tmp_path: Path, row: str, column: str
) -> None:
    path = write_csv(tmp_path, TRADES_HEADER, trade(500, "BTCUSDT", "61837.6"), row)

    with pytest.raises(ValueError, match=rf"line 3, column {column}:") as info:
        read_ticks(path)

    assert str(path) in str(info.value)


def test_read_ticks_when_bar_time_malformed_then_names_ts_utc(tmp_path: Path) -> None:
    path = write_csv(tmp_path, BARS_HEADER, "04/09/2017 00:00,coinbase,ETHUSD,1,1,1,353.1,1")

    with pytest.raises(ValueError, match=r"line 2, column ts_utc: expected an ISO 8601"):
        read_ticks(path)


def test_read_ticks_when_row_has_missing_fields_then_names_line(tmp_path: Path) -> None:
    path = write_csv(tmp_path, TRADES_HEADER, "1000,1001,1,BTCUSDT,1,61837.63")

    with pytest.raises(ValueError, match=r"line 2: expected 8 fields, got 6"):
        read_ticks(path)


def test_parse_symbol_map_when_items_valid_then_maps_from_to() -> None:
    assert parse_symbol_map(["ETHUSD=ETHUSDT", " BTCUSD = BTCUSDT "]) == {
        "ETHUSD": "ETHUSDT",
        "BTCUSD": "BTCUSDT",
    }


@pytest.mark.parametrize(
    "item", ["ETHUSD", "=ETHUSDT", "ETHUSD=", "A=B=C", "ETH USD=ETHUSDT", "ETHUSD=ETH.USDT"]
)
def test_parse_symbol_map_when_item_malformed_then_raises(item: str) -> None:
    with pytest.raises(ValueError, match="expected FROM=TO"):
        parse_symbol_map([item])


def test_parse_symbol_map_when_symbol_mapped_twice_then_raises() -> None:
    with pytest.raises(ValueError, match="mapped twice"):
        parse_symbol_map(["ETHUSD=ETHUSDT", "ETHUSD=ETHBTC"])


@pytest.mark.shared_data
def test_read_ticks_when_recorded_binance_trades_then_counts_match_readme(
    shared_data_dir: Path,
) -> None:
    ticks = read_ticks(shared_data_dir / "binance_spot_trades_btcusdt_ethusdt_2024-08-08.csv")

    assert Counter(tick.symbol for tick in ticks) == {"BTCUSDT": 19_904, "ETHUSDT": 14_515}
    assert [t.timestamp for t in ticks] == sorted(t.timestamp for t in ticks)
    assert ticks[0] == ReplayTick("BTCUSDT", 61837.63, 1_723_161_255_342)


@pytest.mark.shared_data
def test_read_ticks_when_coinbase_eth_bars_of_2017_09_04_then_close_falls_353_14_to_285_01(
    shared_data_dir: Path,
) -> None:
    path = shared_data_dir / "coinbase_1m_bars_btcusd_ethusd.csv"
    with path.open(newline="") as fh:
        expected = [
            float(row["close"])
            for row in csv.DictReader(fh)
            if row["symbol"] == "ETHUSD" and row["ts_utc"].startswith("2017-09-04")
        ]

    ticks = read_ticks(
        path,
        symbol_map=parse_symbol_map(["ETHUSD=ETHUSDT"]),
        symbols={"ETHUSDT"},
        start_ms=SEPT_4_2017_MS,
        end_ms=SEPT_4_2017_MS + DAY_MS,
    )
    closes = [tick.price for tick in ticks]

    assert closes == expected
    assert len(ticks) == 1440
    assert {tick.symbol for tick in ticks} == {"ETHUSDT"}
    assert (max(closes), min(closes)) == (353.14, 285.01)
    assert closes.index(353.14) < closes.index(285.01)
    assert (closes[0], closes[-1]) == (353.1, 316.86)
