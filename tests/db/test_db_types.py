"""UInt256 keeps raw integers exact; UTCDateTime keeps instants in UTC; JSON is written compact and read back as
written. On both backends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from db import Store
from db.models import UINT256_MAX, JsonType, UInt256, UTCDateTime

RAW_VALUES = [
    0,
    1,
    -1,
    2**53 + 1,  # first integer a float cannot hold
    10**18,
    2**128 + 7,
    10**77,
    2**255,
    -(2**255),
    UINT256_MAX - 1,
    UINT256_MAX,
]

_md = sa.MetaData()
_raw = sa.Table(
    "t_raw",
    _md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("v", UInt256(), nullable=True),
)
_ts = sa.Table(
    "t_ts",
    _md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("t", UTCDateTime(), nullable=True),
)

_json = sa.Table(
    "t_json",
    _md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("j", JsonType, nullable=True),
)

JSON_VALUE = {"markets": [{"id": "0xab", "lltv": 0.915, "raw": "10", "hf": None}], "ok": True, "n": [1, 2.5, -3]}


@pytest.fixture
def engine(store: Store) -> Iterator[sa.Engine]:
    _md.create_all(store.engine)
    yield store.engine
    _md.drop_all(store.engine)


def test_uint256_round_trips_exactly(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(_raw), [{"id": i, "v": v} for i, v in enumerate(RAW_VALUES)])
        conn.execute(sa.insert(_raw), {"id": 999, "v": None})
    with engine.connect() as conn:
        got = dict(conn.execute(sa.select(_raw.c.id, _raw.c.v)).all())
    assert got.pop(999) is None
    assert [got[i] for i in range(len(RAW_VALUES))] == RAW_VALUES
    assert all(type(v) is int for v in got.values())


def test_uint256_is_stored_as_exact_digits(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(_raw), {"id": 1, "v": UINT256_MAX})
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT CAST(v AS TEXT) FROM t_raw")).scalar_one()
    assert stored == str(UINT256_MAX)


@pytest.mark.parametrize("value", [UINT256_MAX + 1, -(2**255) - 1])
def test_uint256_refuses_out_of_range(engine: sa.Engine, value: int) -> None:
    with pytest.raises(sa.exc.StatementError, match="out of the uint256"), engine.begin() as conn:
        conn.execute(sa.insert(_raw), {"id": 1, "v": value})


@pytest.mark.parametrize("value", [1.0, True, "1"])
def test_uint256_refuses_non_ints(engine: sa.Engine, value: object) -> None:
    with pytest.raises(sa.exc.StatementError, match="wants an int"), engine.begin() as conn:
        conn.execute(sa.insert(_raw), {"id": 1, "v": value})


def test_utc_datetime_round_trips_as_aware_utc(engine: sa.Engine) -> None:
    plus2 = timezone(timedelta(hours=2))
    values = [
        datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
        datetime(2025, 3, 1, 14, 0, 0, tzinfo=plus2),  # 12:00 UTC
    ]
    with engine.begin() as conn:
        conn.execute(sa.insert(_ts), [{"id": i, "t": t} for i, t in enumerate(values)])
    with engine.connect() as conn:
        got = conn.execute(sa.select(_ts.c.t).order_by(_ts.c.id)).scalars().all()
    assert got == values
    assert all(t.utcoffset() == timedelta(0) for t in got)
    assert got[1] == datetime(2025, 3, 1, 12, tzinfo=UTC)


def test_utc_datetime_refuses_naive(engine: sa.Engine) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"), engine.begin() as conn:
        conn.execute(sa.insert(_ts), {"id": 1, "t": datetime(2025, 1, 1)})


def test_json_is_written_without_spaces_and_read_back_equal(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(_json.insert(), [{"id": 1, "j": JSON_VALUE}])
        assert conn.execute(sa.select(_json.c.j)).scalar_one() == JSON_VALUE
        if engine.dialect.name == "sqlite":  # stored as text, as given (PostgreSQL's jsonb keeps a binary form)
            text = conn.exec_driver_sql("SELECT j FROM t_json").scalar_one()
            assert text == '{"markets":[{"id":"0xab","lltv":0.915,"raw":"10","hf":null}],"ok":true,"n":[1,2.5,-3]}'
