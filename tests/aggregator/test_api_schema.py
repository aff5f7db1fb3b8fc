"""Property-based tests of the HTTP API against its own OpenAPI document (schemathesis).

The schema is the one a real uvicorn server serves at ``/openapi.json`` (a thread, a loopback port) over a real
store filled with ``tests/db/db_testdata`` rows, on SQLite and on PostgreSQL. For every operation schemathesis
sends the coverage cases (boundaries, missing, wrongly typed and unknown parameters, other HTTP methods),
explicit examples and generated requests, valid and malformed alike, and checks every response: never a 5xx, a
status code the schema documents, body and headers as documented, malformed input refused with a 4xx, an
operation that declares authentication enforcing it, ``Allow`` of a 405 naming the path's methods.

Every check schemathesis has runs, ``positive_data_acceptance`` ("schema-valid request rejected") included: a
request the schema calls valid must get a 2xx, or a 404 for an identifier that does not exist. The schema states
all it can (an address is ``^0x[0-9a-fA-F]{40}$``, each rule kind's parameters, list sizes). What JSON Schema
cannot state is made true in the valid requests (and each of those refusals is tested on its own elsewhere):

* an address in mixed case must be a valid EIP-55 checksum (else 400/422): the schema names the format
  ``eip55-address``, and :data:`ADDRESSES` is that format's generator (lowercase, uppercase or checksummed);
* references to what the store holds (``tests/aggregator/test_api_process.py``, ``test_alert_rules.py``): a new
  rule's wallet is tracked, its venue one the store knows and its asset one the store holds a price of, and a
  rule's new parameters are those of its kind;
* relations between parameters (``tests/aggregator/test_api_read.py``): ``from`` ≤ ``to``, and an alias
  (``from_block``) given with its name (``from``) agrees with it.

The last two are made true by :func:`_fit_state` just before a valid request is sent (drawing from the store).

Generated identifiers are random, so on their own they reach 404 (valid) or 400/422 (malformed). Two hooks bring
the 2xx paths in: ``flatmap_case`` swaps, in about half of the generated requests whose part in question is not
the malformed one, a real identifier into the path (tracked wallets as stored and lowercase, an existing alert
rule), the ``wallet`` query parameter and the bodies (a tracked wallet for a rule, a new valid address for
``POST /v1/wallets``); ``before_add_examples`` adds, for each operation on them, explicit requests
whose status is known (200/201/204 or 404) and asserted. Reads and writes get different wallets and rules, so a
generated ``DELETE`` cannot remove what the reads are checked against.

API keys: every request carries ``Authorization: Bearer <key>`` (a write key the store created), and
``test_writes_without_a_key_are_401`` checks that every write operation refuses a request without a key, with
a wrong or a malformed one, and leaves the store as it was; ``test_read_keys_cannot_write`` that every write
operation refuses a read key with 403 and changes nothing.

Bounded and deterministic: ``MAX_EXAMPLES`` generated requests per operation (valid and malformed together),
plus the coverage cases and the examples; generation is derandomized with a fixed seed, without an example
database.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import eth_utils
import httpx
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.config import HealthCheck
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.schemas import OpenApiSchema

from aggregator.api.app import create_app
from aggregator.api.models import ADDRESS_FORMAT
from aggregator.api.server import ApiServer
from db import RiskRow, Store
from db.models import RULE_KINDS
from tests.db import db_testdata as td

MAX_EXAMPLES = 30
SEED = 20_261_121
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PATH, QUERY, BODY = ParameterLocation.PATH, ParameterLocation.QUERY, ParameterLocation.BODY
T0 = datetime(2026, 11, 21, tzinfo=UTC)
Case = schemathesis.Case[Any]

_RAW = st.binary(min_size=20, max_size=20)
ADDRESSES = st.one_of(_RAW.map(lambda b: "0x" + b.hex()), _RAW.map(lambda b: "0x" + b.hex().upper()),
                      _RAW.map(lambda b: str(eth_utils.to_checksum_address(b))))
"""The schema's address format: 0x + 40 hex digits in one case, or mixed as EIP-55 says (eth_utils computes the
checksum, not the code under test)."""
schemathesis.openapi.format(ADDRESS_FORMAT, ADDRESSES)


@dataclasses.dataclass(frozen=True)
class World:
    """What the store holds, by role."""

    with_risk: str  # snapshots at blocks 100-104 on aave_v3 (and 104 on uniswap_v3), a risk result, a rule
    with_snapshots: str  # snapshots at blocks 100-104 on aave_v3, no risk result
    empty: str  # tracked, nothing stored yet
    for_writes: tuple[str, ...]  # tracked, nothing stored: the only wallets generated writes may remove
    untracked: tuple[str, ...]  # valid addresses, not tracked: what generated POST /v1/wallets may add
    never_tracked: str  # a valid address no request adds
    rule: int  # an alert rule of `with_risk`, for reads and updates
    rules_for_deletes: tuple[int, ...]  # the only rules DELETE is given
    venues: tuple[str, ...]  # the venues the store knows
    assets: tuple[str, ...]  # the symbols the store holds prices of

    @property
    def for_reads(self) -> tuple[str, ...]:
        wallets = (self.with_risk, self.with_snapshots, self.empty)
        return wallets + tuple(w.lower() for w in wallets)

    def real_values(self, method: str) -> dict[tuple[ParameterLocation, str], tuple[Any, ...]]:
        """Real values of the identifiers an operation of ``method`` takes, by (location, name)."""
        read = method.upper() in READ_METHODS
        return {
            (PATH, "address"): self.for_reads if read else self.for_writes,
            (PATH, "rule_id"): self.rules_for_deletes if method.upper() == "DELETE" else (self.rule,),
            (QUERY, "wallet"): self.for_reads,
            (BODY, "wallet"): self.for_reads,  # POST /v1/alert-rules
            (BODY, "address"): self.untracked,  # POST /v1/wallets
        }

    def examples(self) -> dict[tuple[str, str], list[tuple[dict[str, Any], int | None]]]:
        """Explicit requests (Case keyword arguments) of each operation, with the status each must get (None: any
        the schema documents but a 5xx)."""
        def health(a: str) -> int:
            return 200 if a.lower() in (self.with_risk.lower(), self.with_snapshots.lower()) else 404

        def risk(a: str) -> int:
            return 200 if a.lower() == self.with_risk.lower() else 404

        by_address: dict[str, Callable[[str], int]] = {
            "health": health, "positions": health, "risk": risk,
            "history": lambda _a: 200, "alerts": lambda _a: 200}
        out: dict[tuple[str, str], list[tuple[dict[str, Any], int | None]]] = {
            ("GET", f"/v1/wallets/{{address}}/{name}"): [({"path_parameters": {"address": a}}, status(a))
                                                         for a in self.for_reads]
            for name, status in by_address.items()
        }
        new = self.untracked
        out[("DELETE", "/v1/wallets/{address}")] = [({"path_parameters": {"address": self.for_writes[0]}}, 204),
                                                     ({"path_parameters": {"address": self.never_tracked}}, 404)]
        # Text the store cannot keep as it is (PostgreSQL refuses NUL in text and in JSON): a 4xx or stored some
        # other way, never a 500. Generated strings rarely hold a NUL, so they are given here.
        out[("POST", "/v1/wallets")] = [({"body": {"address": new[0], "label": "added"}}, 201),
                                        ({"body": [{"address": new[1].lower()}, {"address": new[0]}]}, 201),
                                        ({"body": {"address": new[2], "label": "nul\x00label"}}, None)]
        out[("GET", "/v1/alert-rules")] = [({"query": {"wallet": self.with_risk.lower()}}, 200)]
        out[("POST", "/v1/alert-rules")] = [
            ({"body": {"wallet": self.with_snapshots, "kind": "venue_health_below",
                       "params": {"venue": "aave_v3", "threshold": 1.25}, "hysteresis": 0.05}}, 201),
            ({"body": {"wallet": self.with_snapshots, "kind": "price_cross",
                       "params": {"asset": "WE\x00TH", "level": 4000.0, "direction": "above"}}}, None)]
        out[("GET", "/v1/alert-rules/{rule_id}")] = [({"path_parameters": {"rule_id": self.rule}}, 200)]
        out[("PATCH", "/v1/alert-rules/{rule_id}")] = [
            ({"path_parameters": {"rule_id": self.rule}, "body": {"params": {"venue": "aave_v3", "threshold": 1.4},
                                                                   "severity": "critical"}}, 200)]
        out[("DELETE", "/v1/alert-rules/{rule_id}")] = [
            ({"path_parameters": {"rule_id": self.rules_for_deletes[-1]}}, 204)]
        return out


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url) as s:
        yield s


@pytest.fixture
def world(store: Store) -> World:
    wallets = td.setup(store, 6)
    for block in (100, 101, 102, 103):
        store.write_sync(td.batch(wallets[:2], block))
    risk = RiskRow(wallet=wallets[0], block_number=104, computed_at=T0, unified_health=1.7, equity_usd=10_000.0,
                   margin_usd=2_000.0, netting_benefit_usd=500.0,
                   document={"wallet": wallets[0], "unified_health": 1.7, "first_liquidation": {}})
    store.write_sync(dataclasses.replace(td.batch(wallets[:2], 104), risks=(risk,)))
    store.write_sync(td.batch(wallets[:1], 104, venue="uniswap_v3", n_positions=1))
    rules = [store.add_rule(wallets[0], "venue_health_below", {"venue": "aave_v3", "threshold": 1.2}, now=T0).id
             for _ in range(3)]
    return World(with_risk=wallets[0], with_snapshots=wallets[1], empty=wallets[2], for_writes=tuple(wallets[3:]),
                 untracked=tuple(td.wallet(i) for i in range(100, 104)), never_tracked=td.wallet(999),
                 rule=rules[1], rules_for_deletes=(rules[0], rules[2]),
                 venues=tuple(v.name for v in store.list_venues()), assets=tuple(store.priced_symbols()))


@pytest.fixture
def api_key(store: Store) -> str | None:
    """A valid API key that may write."""
    _row, key = store.create_api_key("schemathesis", now=T0, scope="write")
    return key


@pytest.fixture
def base_url(store: Store, world: World) -> Iterator[str]:
    """The app served by uvicorn on a loopback port, in a thread, over the filled store."""
    with ApiServer(create_app(store)) as server:
        yield server.url


@pytest.fixture
def expected_status() -> dict[str, int | None]:
    """Case id → the status an explicit example must get (filled by the schema's hook)."""
    return {}


def _valid(case: Case) -> bool:
    """A request generated as schema-valid (positive_data_acceptance judges these)."""
    return case.meta is not None and case.meta.generation.mode.is_positive


def _fit_state(case: Case, world: World, store: Store) -> None:
    """Make true, in a schema-valid request, what JSON Schema cannot state: the store's wallets, venues and assets
    in a rule's body, a rule's new parameters those of its kind (the world's rules, and a rule an earlier generated
    request created whose id a generated one names), history bounds in order. The choices are drawn from the
    case's own id, so a case stays the same request when it is replayed."""
    if not _valid(case):
        return
    pick = random.Random(case.id).choice
    operation = (case.method.upper(), case.path)
    if operation == ("GET", "/v1/wallets/{address}/history") and case.query:
        query = dict(case.query)
        for name, alias in (("from", "from_block"), ("to", "to_block")):
            if query.get(name) is not None and query.get(alias) is not None:
                query[alias] = query[name]
        low = query.get("from", query.get("from_block"))
        high = query.get("to", query.get("to_block"))
        if low is not None and high is not None and low > high:
            for name in ("from", "from_block", "to", "to_block"):
                if query.get(name) is not None:
                    query[name] = high if name.startswith("from") else low
        case.query = query
    elif operation == ("POST", "/v1/alert-rules") and isinstance(case.body, dict):
        body = {**case.body, "wallet": pick(world.for_reads)}
        if isinstance(body.get("params"), dict):
            params = dict(body["params"])
            if "venue" in params:
                params["venue"] = pick(world.venues)
            if "asset" in params:
                params["asset"] = pick([*world.assets, *(a.lower() for a in world.assets)])
            body["params"] = params
        case.body = body
    elif (operation == ("PATCH", "/v1/alert-rules/{rule_id}") and isinstance(case.body, dict)
          and isinstance(case.body.get("params"), dict)):
        raw = str(case.path_parameters.get("rule_id"))
        rule = store.get_rule(int(raw)) if raw.isdecimal() and 0 < int(raw) < 2**63 else None
        if rule is None:
            return
        if rule.kind == "venue_health_below":  # the world's rules
            threshold = case.body["params"].get("threshold") or 1.25
            case.body = {**case.body, "params": {"venue": pick(world.venues), "threshold": threshold}}
        else:  # parameters of its kind: those it was created with
            case.body = {**case.body, "params": dict(rule.params)}


def _has(case: Case, location: ParameterLocation, name: str) -> bool:
    if location is BODY:
        items = case.body if isinstance(case.body, list) else [case.body]
        return any(isinstance(item, dict) and name in item for item in items)
    container = case.path_parameters if location is PATH else case.query
    return name in (container or {})


def _set(case: Case, location: ParameterLocation, name: str, value: Any) -> None:
    if location is PATH:
        case.path_parameters = {**case.path_parameters, name: value}
    elif location is QUERY:
        case.query = {**case.query, name: value}
    elif isinstance(case.body, list):
        case.body = [{**item, name: value} if isinstance(item, dict) and name in item else item for item in case.body]
    elif isinstance(case.body, dict):
        case.body = {**case.body, name: value}


@pytest.fixture
def api_schema(
    request: pytest.FixtureRequest, base_url: str, world: World, api_key: str | None,
    expected_status: dict[str, int | None],
) -> OpenApiSchema:
    """The OpenAPI document the server serves, loaded by schemathesis, with the hooks that bring real data in."""
    # schemathesis 4.32's lazy schema reads and rewrites `request.node._nodeid`, which pytest 9.2 no longer has;
    # it only names the per-operation subtests with it.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid

    config = schemathesis.Config(seed=SEED)
    project = config.projects.default
    project.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=MAX_EXAMPLES,
                              deterministic=True, database="none")
    project.checks.update(excluded_check_names=[])  # every check (see the module docstring)
    auth = {"Authorization": f"Bearer {api_key}"} if api_key is not None else {}
    # A busy CI machine can make generating a case slow; that is no finding (the cases stay the same).
    project.update(headers=auth, suppress_health_check=[HealthCheck.too_slow])
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=config, timeout=10)
    examples = world.examples()

    @schema.hook("flatmap_case")
    def real_identifiers(_context: schemathesis.HookContext, case: Case) -> Any:
        # Not in a part that is the malformed one: the request would turn valid and still be judged as malformed.
        slots = [(location, name, values) for (location, name), values in world.real_values(case.method).items()
                 if _has(case, location, name) and not (case.meta and case.meta.is_negative_at(location))]

        def apply(picked: tuple[Any, ...]) -> Case:
            for (location, name, _), value in zip(slots, picked, strict=True):
                if value is not None:
                    _set(case, location, name, value)
            return case

        if not slots:
            return st.just(case)
        return st.tuples(*(st.none() | st.sampled_from(values) for _, _, values in slots)).map(apply)

    @schema.hook("before_add_examples")
    def real_examples(context: schemathesis.HookContext, cases: list[Case]) -> None:
        operation = context.operation
        assert operation is not None
        for kwargs, status in examples.get((operation.method.upper(), operation.path), []):
            case = operation.Case(headers=dict(auth), **kwargs)
            expected_status[case.id] = status
            cases.append(case)

    return schema


lazy_schema = schemathesis.pytest.from_fixture("api_schema")


@lazy_schema.parametrize()
def test_every_operation_conforms_to_the_schema(
    case: Case, api_key: str | None, expected_status: dict[str, int | None], world: World, store: Store
) -> None:
    _fit_state(case, world, store)  # here, not in a hook: the coverage phase's cases pass no hook
    response = case.call_and_validate(timeout=10)
    if api_key is not None and response.request.headers.get("Authorization") == f"Bearer {api_key}":
        # The key is valid: whatever else is wrong with the request, it is not the authentication.
        assert response.status_code != 401, f"{case.method} {case.formatted_path}: {response.text[:300]}"
    wanted = expected_status.get(case.id)
    if wanted is not None:
        assert response.status_code == wanted, (
            f"{case.method} {case.formatted_path} {case.body!r}: {response.status_code} {response.text[:300]}")


def test_real_wallets_are_answered(base_url: str, world: World, api_key: str | None) -> None:
    """Tracked wallets with data get their documents (not only the 4xx the generated addresses get)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as client:
        for address in (world.with_risk, world.with_risk.lower()):
            health = client.get(f"/v1/wallets/{address}/health")
            assert health.status_code == 200, health.text
            assert {v["venue"] for v in health.json()["venues"]} == {"aave_v3", "uniswap_v3"}
            assert client.get(f"/v1/wallets/{address}/risk").json()["unified_health"] == 1.7
            history = client.get(f"/v1/wallets/{address}/history").json()
            assert len(history["items"]) == 6  # blocks 100-104 on aave_v3, 104 on uniswap_v3
        assert client.get(f"/v1/wallets/{world.with_snapshots}/risk").status_code == 404
        assert client.get(f"/v1/wallets/{world.empty}/health").status_code == 404


def _writes(client: httpx.Client, world: World) -> list[tuple[str, str, Any]]:
    """(method, path, a valid body) of every write operation the schema lists."""
    paths = client.get("/openapi.json").json()["paths"]
    # A POST that only reads (the what-if) declares the key optional, as the reads do ({} among its schemes).
    writes = [(method.upper(), path) for path, item in paths.items() for method, op in item.items()
              if method.upper() in {"POST", "PUT", "PATCH", "DELETE"} and {} not in op.get("security", [])]
    assert {("POST", "/v1/wallets"), ("DELETE", "/v1/wallets/{address}"), ("POST", "/v1/alert-rules"),
            ("PATCH", "/v1/alert-rules/{rule_id}"), ("DELETE", "/v1/alert-rules/{rule_id}")} <= set(writes)
    out = []
    for method, template in writes:
        path = template.replace("{address}", world.with_risk).replace("{rule_id}", str(world.rule))
        body: Any = None
        if (method, template) == ("POST", "/v1/wallets"):
            body = {"address": world.untracked[0], "label": "intruder"}
        elif (method, template) == ("POST", "/v1/alert-rules"):
            body = {"wallet": world.with_risk, "kind": "unified_health_below", "params": {"threshold": 1.1}}
        elif method == "PATCH":
            body = {"enabled": False}
        out.append((method, path, body))
    return out


def test_writes_without_a_key_are_401(store: Store, base_url: str, world: World, api_key: str | None) -> None:
    """Every write operation the schema lists refuses a request without a key, with a wrong or a malformed one,
    and changes nothing."""
    if api_key is None:
        pytest.skip("the store cannot create API keys yet (Store.create_api_key)")
    with httpx.Client(base_url=base_url, timeout=10) as client:
        before = (store.list_wallets(), store.list_rules())
        for method, path, body in _writes(client, world):
            for headers in ({}, {"Authorization": "Bearer xm_not-a-key"}, {"Authorization": api_key},
                            {"Authorization": f"Basic {api_key}"}):
                resp = client.request(method, path, json=body, headers=headers)
                assert resp.status_code == 401, f"{method} {path} with {headers}: {resp.status_code} {resp.text}"
                assert resp.json()["error"], resp.text
                assert resp.headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert (store.list_wallets(), store.list_rules()) == before


def test_read_keys_cannot_write(store: Store, base_url: str, world: World) -> None:
    """Every write operation the schema lists refuses a valid read key with 403 (documented in the schema) and
    changes nothing."""
    _row, reader = store.create_api_key("analytics", now=T0, scope="read")
    with httpx.Client(base_url=base_url, timeout=10, headers={"Authorization": f"Bearer {reader}"}) as client:
        paths = client.get("/openapi.json").json()["paths"]
        assert client.get(f"/v1/wallets/{world.with_risk}/health").status_code == 200
        before = (store.list_wallets(), store.list_rules())
        for method, path, body in _writes(client, world):
            resp = client.request(method, path, json=body)
            assert resp.status_code == 403, f"{method} {path}: {resp.status_code} {resp.text}"
            assert "scope read" in resp.json()["error"], resp.text
            template = next(t for t in paths if (t.replace("{address}", world.with_risk)
                                                 .replace("{rule_id}", str(world.rule))) == path)
            assert "403" in paths[template][method.lower()]["responses"], (method, template)
    assert (store.list_wallets(), store.list_rules()) == before


def test_the_schema_states_addresses_and_rule_parameters(base_url: str) -> None:
    """Every address the API takes (path, query, body) has the address pattern and format; a new rule's schema
    has one branch per rule kind, each requiring that kind's parameters."""
    with httpx.Client(base_url=base_url, timeout=10) as client:
        doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    address = {"pattern": "^0x[0-9a-fA-F]{40}$", "format": ADDRESS_FORMAT}
    seen = []
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            for param in operation.get("parameters", []):
                if param["name"] in ("address", "wallet"):
                    schema = param["schema"]  # an optional one: the keywords apply to its string branch
                    schema = {**schema, **next(s for s in schema.get("anyOf", [schema]) if s.get("type") == "string")}
                    assert address.items() <= schema.items(), (method, path, param)
                    seen.append((method, path, param["name"]))
    assert len(seen) >= 7  # the six operations on /v1/wallets/{address}..., and GET /v1/alert-rules?wallet=
    for name, field in (("WalletIn", "address"), *((f"{k}RuleIn", "wallet") for k in (
            "VenueHealth", "UnifiedHealth", "Move", "Oracle", "PriceCross"))):
        assert address.items() <= schemas[name]["properties"][field].items(), name
    new_rule = doc["paths"]["/v1/alert-rules"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    mapping = new_rule["discriminator"]["mapping"]
    assert set(mapping) == set(RULE_KINDS)
    required = {kind: schemas[ref.rsplit("/", 1)[1]]["properties"]["params"] for kind, ref in mapping.items()}
    required = {kind: set(schemas[(p.get("$ref") or p["allOf"][0]["$ref"]).rsplit("/", 1)[1]].get("required", []))
                for kind, p in required.items()}
    assert required == {"venue_health_below": {"venue", "threshold"}, "unified_health_below": {"threshold"},
                        "move_to_liquidation_below": {"threshold"}, "oracle_invalid": set(),
                        "price_cross": {"asset", "level", "direction"}}
    wallets = doc["paths"]["/v1/wallets"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    lists = [s for s in wallets["anyOf"] if s.get("type") == "array"]
    assert [(s["minItems"], s["maxItems"]) for s in lists] == [(1, 1_000)]
