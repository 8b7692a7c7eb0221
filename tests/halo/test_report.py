"""SQL report reads: the SQL's shape, rows back into REST records, and the sandbox's report API."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import date

import httpx
import pytest
import respx

from sandbox.halo import Faults
from sandbox.halo_data import HaloDataSet
from sandbox.halo_report import (
    SCHEMA,
    ReportDatabase,
    ReportRefused,
    answer,
    as_tables_hold_it,
    check_sql,
)
from shared.halo.client import HaloClient
from shared.halo.errors import HaloAuthError, HaloReportError
from shared.halo.report import ReadMode, read_via_report, report_available
from shared.halo.report_rows import (
    as_bool,
    as_datetime,
    as_float,
    as_int,
    client_record,
    contract_record,
    entra_tenant_record,
    invoice_record,
    line_record,
    with_entra_tenants,
    with_lines,
)
from shared.halo.report_sql import PROBE_SQL, TABLES, Bounds, bounds_sql, id_ranges, range_sql
from shared.outbound.budget import RetryPolicy
from shared.records.halo import Client, Contract, RecurringInvoice
from shared.sync.read import read_by_report

BASE = "https://halo.example.com"
CONTOSO_ENTRA = "C0FFEE00-1234-4ABC-8DEF-0123456789AB"
TODAY = date(2026, 6, 15)


def every_sql() -> list[str]:
    return [PROBE_SQL, bounds_sql(), *(range_sql(t, -5, 5) for t in TABLES)]


# -- the SQL -------------------------------------------------------------------------------


@pytest.mark.parametrize("sql", every_sql())
def test_the_sql_is_one_select_in_the_dialect_both_engines_accept(sql):
    check_sql(sql)  # what HaloPSA refuses, the sandbox refuses
    upper = sql.upper()
    for construct in (" TOP ", "ISNULL", "[", "]", "--", ";", "DECLARE", "ORDER BY", "WITH "):
        assert construct not in upper, construct
    assert "LIMIT" not in upper and "OFFSET" not in upper


@pytest.mark.parametrize("sql", every_sql())
def test_the_sql_names_only_haloPSA_tables_and_columns(sql):
    # The sandbox's tables carry exactly the names of halo-sql-columns.json: SQL that runs there
    # names nothing else (SQLite says "no such column" otherwise).
    ReportDatabase(HaloDataSet()).run(sql)
    names = {column.lower() for _, columns in SCHEMA for column, _ in columns}
    tables = {table.lower() for table, _ in SCHEMA}
    words = set(re.findall(r"\b([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\()", sql))
    aliases = set(re.findall(r"\bAS ([a-z_]+)", sql))
    keywords = {"select", "from", "where", "and", "as", "left", "join", "on", "between", "count"}
    unknown = {w for w in words if w.lower() not in names | tables | keywords and w not in aliases}
    assert unknown == set()


def test_bounds_ask_every_table_for_its_rows_and_key_range():
    database = ReportDatabase(HaloDataSet())
    (row,) = database.run(bounds_sql())
    kinds = {t.kind for t in TABLES}
    assert set(row) == {f"{k}_{p}" for k in kinds for p in ("rows", "low", "high")}
    assert row["clients_rows"] == "0" and row["clients_low"] is None


def test_id_ranges_cover_the_keys_in_parts_of_about_max_rows():
    assert id_ranges(Bounds(0, 0, 0), 100) == []
    assert id_ranges(Bounds(50, 1, 50), 100) == [(1, 50)]
    ranges = id_ranges(Bounds(250, 1, 250), 100)
    assert ranges == [(1, 84), (85, 168), (169, 250)]
    negative = id_ranges(Bounds(30, -300, -1), 10)
    assert negative[0][0] == -300 and negative[-1][1] == -1 and len(negative) == 3
    covered = [k for lo, hi in negative for k in range(lo, hi + 1)]
    assert covered == list(range(-300, 0))


# -- values and records ----------------------------------------------------------------------


def test_string_values_become_the_types_rest_sends():
    assert as_int("21") == 21 and as_int("21.0") == 21 and as_int("-94") == -94
    assert as_int("") is None and as_int(None) is None and as_int("abc") == "abc"
    assert as_float("4.5") == 4.5 and as_float("25") == 25.0 and as_float(None) == 0.0
    assert as_bool("1") is True and as_bool("True") is True and as_bool("false") is False
    assert as_bool(None, default=True) is True and as_bool("maybe") == "maybe"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-20T18:50:25.057", "2025-03-20T18:50:25.057"),
        ("2025-03-20 18:50:25.057", "2025-03-20T18:50:25.057"),
        ("2025-03-20T18:50:25.0570000Z", "2025-03-20T18:50:25.0570000Z"),
        ("2025-03-20T00:00:00+00:00", "2025-03-20T00:00:00+00:00"),
        ("Mar 20 2025  6:50PM", "2025-03-20T18:50:00"),
        ("Dec  1 2025 12:05AM", "2025-12-01T00:05:00"),
        ("", None),
        (None, None),
        ("not-a-date", "not-a-date"),  # passed on: the model rejects the record, no guess
    ],
)
def test_datetimes_arrive_as_rest_writes_them(text, expected):
    assert as_datetime(text) == expected


def test_a_contract_row_is_a_rest_contract_and_expired_is_computed():
    row = {
        "ID": "7",
        "client_id": "3",
        "client_name": "Northwind",
        "site_id": "-1",
        "ref": None,
        "contracttype": "1",
        "start_date": "2025-01-01T00:00:00",
        "end_date": "2026-06-14T00:00:00",
        "active": "1",
    }
    record = contract_record(row, TODAY)
    assert record["id"] == 7 and record["ref"] == "" and record["expired"] is True
    contract = Contract.model_validate(record)
    assert (contract.client_id, contract.site_id, contract.active) == (3, None, True)
    # No table holds the type's name: REST names it (shared.halo.proof), never a guess.
    assert (contract.contracttype, contract.contracttype_name) == (1, "")
    assert contract_record({**row, "end_date": "2026-06-15T00:00:00"}, TODAY)["expired"] is False
    assert contract_record({**row, "end_date": "2099-12-31T00:00:00"}, TODAY)["expired"] is False
    assert contract_record({**row, "end_date": "1900-01-01T00:00:00"}, TODAY)["expired"] is False
    assert contract_record({**row, "active": None}, TODAY)["active"] is True  # column default 1


def test_an_invoice_row_carries_its_schedule_and_its_lines_in_order():
    header = invoice_record(
        {
            "id": "-94",
            "client_id": "420",
            "client_name": "Example",
            "sitenumber": "0",
            "contract_id": "0",
            "schedule_id": "150",
            "disabled": "0",
            "schedule_startdate": "2024-03-01T12:00:00",
            "schedule_end_date": "2099-12-31T00:00:00",
            "nextcreationdate": "2024-04-30T23:00:00",
            "schedule_period": "2",
            "schedule_type": "54",
            "schedule_name": "(Untitled Template 150)",
        }
    )
    assert header["id"] == -94 and header["schedule_id"] == 150
    assert header["schedule"]["end_date"] == "2099-12-31T00:00:00"
    line = {
        "ihid": "-94",
        "item_id": "1402",
        "qty_order": "0",
        "recurring_invoice_quantity_type": "1",
        "startdate": None,
        "enddate": "",
        "isinactive": "0",
        "site": "-1",
    }
    lines = [line_record({**line, "id": "3", "sequenceid": "2"})]
    lines.append(line_record({**line, "id": "9", "sequenceid": "1"}))
    lines.append(line_record({**line, "id": "5", "ihid": "-7"}))  # another invoice's
    (invoice,) = with_lines([header], lines)
    assert [x["id"] for x in invoice["lines"]] == [9, 3]
    assert "startdate" not in invoice["lines"][0]  # the API leaves an unset line date out
    assert invoice["lines"][0]["_itemid"] == 1402
    model = RecurringInvoice.model_validate(invoice)
    assert model.id == -94 and model.disabled is False and len(model.lines) == 2
    no_schedule = invoice_record({"id": "-5", "client_id": "1"})
    assert "schedule" not in no_schedule and no_schedule["disabled"] is False


# -- the sandbox's report API ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("SELECT 1; SELECT 2", "Incorrect syntax near ';'"),
        ("SELECT 1;", "Incorrect syntax near ';'"),
        ("SELECT 1 -- the answer", "--"),
        ("DECLARE @n INT SELECT 1", "DECLARE"),
        ("SELECT 1 AS n /* ok */ WHERE 1 = 1 AND 'declare' = 'declare'", None),
        ("SELECT ';' AS a, '--' AS b", None),
        ("UPDATE AREA SET aareadesc = ''", "SELECT"),
        ("   ", "No SQL"),
    ],
)
def test_the_sandbox_refuses_what_halopsa_refuses(sql, why):
    if why is None:
        check_sql(sql)
    else:
        with pytest.raises(ReportRefused, match=re.escape(why)):
            check_sql(sql)


def _demo() -> HaloDataSet:
    return HaloDataSet(
        clients=[
            {
                "id": 1,
                "name": "Contoso",
                "inactive": False,
                "toplevel_id": 1,
                "azure_tenants": [{"id": 3, "client_id": 1, "azure_tenant_id": CONTOSO_ENTRA}],
            }
        ],
        sites=[{"id": 4, "name": "HQ", "client_id": 1.0, "inactive": False}],
        contracts=[
            {"id": 2, "client_id": 1, "contracttype": 1, "contracttype_name": "Managed Security"}
        ],
        invoices=[
            {
                "id": -94,
                "client_id": 1,
                "disabled": False,
                "schedule": {"id": 150, "disabled": False, "end_date": "2099-12-31T00:00:00"},
                "lines": [{"id": 24963, "ihid": -94, "_itemid": 5, "qty_order": 1.0}],
            }
        ],
        items=[{"id": 5, "name": "EDR", "internalreference": "EDR-1", "baseprice": 4.5}],
    )


def test_the_sandbox_answers_rows_of_strings_and_errors_as_http_200():
    database = ReportDatabase(_demo())
    body = json.dumps([{"sql": "SELECT Sarea AS c, sdesc AS n FROM SITE", "_loadreportonly": True}])
    status, found = answer(database, body.encode())
    assert status == 200
    assert found["report"]["loaded"] is True
    assert found["report"]["rows"] == [{"c": "1", "n": "HQ"}]  # a whole FLOAT is written "1"
    status, failed = answer(database, json.dumps([{"sql": "SELECT nope FROM AREA"}]).encode())
    assert status == 200 and failed["report"]["rows"] == []
    assert failed["report"]["loaded"] is False and "nope" in failed["report"]["load_error"]
    status, _ = answer(database, b"not json")
    assert status == 400


def test_a_clients_entra_tenants_are_rows_of_their_own_table():
    database = ReportDatabase(_demo())
    (row,) = database.run("SELECT AATid, AATAreaId, AATAzureTenantId FROM AreaAzureTenant")
    assert row == {"AATid": "3", "AATAreaId": "1", "AATAzureTenantId": CONTOSO_ENTRA}


def test_entra_tenant_rows_join_their_clients_as_rest_lists_them():
    clients = [client_record({"id": "1", "name": "A"}), client_record({"id": "2", "name": "B"})]
    rows = [
        entra_tenant_record({"ID": "8", "client_id": "1", "azure_tenant_id": CONTOSO_ENTRA}),
        entra_tenant_record({"id": "7", "client_id": "1.0", "azure_tenant_id": ""}),
        entra_tenant_record({"id": "9", "client_id": "99", "azure_tenant_id": CONTOSO_ENTRA}),
    ]
    joined = with_entra_tenants(clients, rows)
    assert [[t["id"] for t in c["azure_tenants"]] for c in joined] == [[7, 8], []]
    parsed = [Client.model_validate(c) for c in joined]
    assert [c.entra_tenant_ids for c in parsed] == [(CONTOSO_ENTRA.lower(),), ()]


def test_the_loader_puts_rest_fields_under_haloPSA_names():
    database = ReportDatabase(_demo())
    (contract,) = database.run(
        "SELECT chtype, fvalue FROM CONTRACTHEADER "
        "LEFT JOIN LOOKUP ON fid = 28 AND fcode = chbillingdescription"
    )
    assert contract == {"chtype": "1", "fvalue": "Managed Security"}
    (schedule,) = database.run("SELECT stdid, StdInvoiceId, stddisabled FROM STDREQUEST")
    assert schedule == {"stdid": "150", "StdInvoiceId": "-94", "stddisabled": "0"}
    (line,) = database.run("SELECT IdIHid, ID_ItemID, IDQty_Order FROM INVOICEDETAIL")
    assert line == {"IdIHid": "-94", "ID_ItemID": "5", "IDQty_Order": "1"}
    # Absent keys take HaloPSA's column defaults.
    (area,) = database.run("SELECT AIsInactive, Astopped, Aarearef FROM AREA")
    assert area == {"AIsInactive": "0", "Astopped": "0", "Aarearef": None}


# -- the client ------------------------------------------------------------------------------


def client() -> HaloClient:
    retry = RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0)

    async def no_sleep(_: float) -> None:
        return None

    return HaloClient(BASE, "id", "secret", retry=retry, sleep=no_sleep)


def token_route(router: respx.Router) -> None:
    router.post(f"{BASE}/auth/token").respond(
        200, json={"access_token": "t", "token_type": "Bearer", "expires_in": 3600}
    )


def test_report_posts_one_profile_and_reads_rows_from_an_object_or_an_array():
    with respx.mock(assert_all_called=True) as router:
        token_route(router)
        route = router.post(f"{BASE}/api/Report").mock(
            side_effect=[
                httpx.Response(200, json={"report": {"loaded": True, "rows": [{"n": "1"}]}}),
                httpx.Response(200, json=[{"report": {"rows": [{"n": "2"}], "load_error": ""}}]),
            ]
        )

        async def go() -> tuple[list, list]:
            async with client() as halo:
                return await halo.report("SELECT 1 AS n"), await halo.report("SELECT 2 AS n")

        first, second = asyncio.run(go())
    assert first == [{"n": "1"}] and second == [{"n": "2"}]
    sent = json.loads(route.calls[0].request.content)
    assert sent == [{"sql": "SELECT 1 AS n", "_loadreportonly": True}]
    assert route.calls[0].request.headers["Authorization"] == "Bearer t"


@pytest.mark.parametrize(
    "body",
    [
        {"report": {"loaded": False, "load_error": "Invalid column name 'x'.", "rows": []}},
        {"load_error": "Invalid column name 'x'."},
    ],
)
def test_a_load_error_in_an_http_200_is_a_report_error(body):
    with respx.mock() as router:
        token_route(router)
        router.post(f"{BASE}/api/Report").respond(200, json=body)

        async def go() -> None:
            async with client() as halo:
                await halo.report("SELECT x FROM AREA")

        with pytest.raises(HaloReportError, match="Invalid column name"):
            asyncio.run(go())


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, {"report": {"loaded": True, "rows": []}}, ReadMode.REPORT),
        (403, {}, ReadMode.REST),  # no reporting permission
        (404, {}, ReadMode.REST),  # no report API
        (200, {"report": {"load_error": "Incorrect syntax"}}, ReadMode.REST),
    ],
)
def test_the_probe_says_whether_halopsa_runs_reports(status, body, expected):
    with respx.mock() as router:
        token_route(router)
        probe = router.post(f"{BASE}/api/Report").respond(status, json=body)

        async def go() -> bool:
            async with client() as halo:
                return await report_available(halo)

        assert asyncio.run(go()) is (expected is ReadMode.REPORT)
    assert json.loads(probe.calls[0].request.content)[0]["sql"] == PROBE_SQL


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (403, {}),  # no reporting permission
        (404, {}),  # no report API
        (200, {"report": {"load_error": "Incorrect syntax"}}),
        (504, {}),  # a deadline the bounds query cannot be split under
    ],
)
def test_auto_reads_through_rest_when_the_report_path_cannot_answer(status, body):
    with respx.mock() as router:
        token_route(router)
        reports = router.post(f"{BASE}/api/Report").respond(status, json=body)

        async def go():
            async with client() as halo:
                return await read_by_report(halo, ReadMode.AUTO, today=TODAY)

        found, proof = asyncio.run(go())
    assert found is None and proof.fallback.startswith("report read failed")
    assert not proof.distrust  # availability, not a disagreement: tried again next run
    # A 504 is a deadline, not a blip: the bounds query (a few aggregates, nothing to split) is
    # tried once more, never five times.
    assert reports.call_count == (2 if status == 504 else 1)


def test_report_mode_against_the_sandbox_reads_in_a_few_requests(halo_sandbox):
    sandbox = halo_sandbox(_demo())

    async def go():
        async with HaloClient(sandbox.url, "sandbox-client", "sandbox-secret") as halo:
            return await read_via_report(halo, today=TODAY, max_rows=1), halo.stats

    found, stats = asyncio.run(go())
    # 1 bounds query + one range per table (one row each with max_rows=1) + the token.
    assert found.requests == 1 + len(TABLES) and found.splits == 0
    assert stats.requests["Report"] == found.requests and stats.total_requests == found.requests + 1
    (invoice,) = found.invoices.records
    assert invoice.id == -94 and [line.id for line in invoice.lines] == [24963]
    assert found.sites.records[0].client_id == 1
    assert found.contracts.records[0].contracttype_name == ""  # named from REST by the proof
    assert found.items.records[0].internalreference == "EDR-1"
    assert found.clients.records[0].entra_tenant_ids == (CONTOSO_ENTRA.lower(),)


def test_a_refused_report_through_the_sandbox_falls_back_to_rest(halo_sandbox):
    sandbox = halo_sandbox(_demo(), faults=Faults(fail=[{"resource": "Report", "status": 403}]))

    async def go():
        async with HaloClient(sandbox.url, "sandbox-client", "sandbox-secret") as halo:
            return await read_by_report(halo, ReadMode.AUTO, today=TODAY)

    found, proof = asyncio.run(go())
    assert found is None and "403" in proof.fallback


def test_an_auth_failure_is_not_mistaken_for_success():
    with respx.mock() as router:
        router.post(f"{BASE}/auth/token").respond(401, json={"error": "invalid_client"})

        async def go() -> None:
            async with client() as halo:
                await halo.report(PROBE_SQL)

        with pytest.raises(HaloAuthError):
            asyncio.run(go())


def test_auto_falls_back_to_rest_when_a_report_fails_and_report_mode_does_not():
    failed = {"report": {"loaded": False, "load_error": "Invalid column name 'stddisabled'."}}
    with respx.mock() as router:
        token_route(router)
        router.post(f"{BASE}/api/Report").mock(
            side_effect=lambda request: httpx.Response(200, json=failed)
        )

        async def go(mode: ReadMode):
            async with client() as halo:
                return await read_by_report(halo, mode, today=TODAY)

        assert asyncio.run(go(ReadMode.AUTO))[0] is None
        with pytest.raises(HaloReportError, match="stddisabled"):
            asyncio.run(go(ReadMode.REPORT))


def test_a_data_set_is_reduced_to_what_halopsa_tables_hold():
    data = HaloDataSet(
        invoices=[
            {
                "id": 3,  # written before recurring invoices had negative ids
                "client_id": 1,
                "disabled": True,
                "startdate": "2025-01-01T00:00:00",
                "lines": [{"id": 30, "ihid": 3, "_itemid": 5, "item_internal_reference": "X"}],
            },
            {
                "id": -4,
                "client_id": 1,
                "disabled": False,
                "enddate": "1900-01-01T00:00:00",
                "schedule": {"id": 9, "disabled": True},
                "lines": [{"id": 40, "ihid": -4, "_itemid": 0}],
            },
        ],
        items=[{"id": 5, "name": "EDR", "description": "?", "internalreference": "EDR-1"}],
    )
    legacy, real = as_tables_hold_it(data).invoices
    assert legacy["id"] == -3 and legacy["lines"][0]["ihid"] == -3
    assert legacy["schedule"]["startdate"] == "2025-01-01T00:00:00"
    assert legacy["schedule"]["disabled"] is True and "startdate" not in legacy
    assert legacy["lines"][0]["item_internal_reference"] == ""  # no column holds a line's own
    assert real["disabled"] is True and "enddate" not in real  # one flag with its schedule's
    assert real["lines"][0]["item_internal_reference"] == ""
    assert "description" not in as_tables_hold_it(data).items[0]
    assert data.invoices[0]["id"] == 3  # a copy: the original is untouched


def test_skewed_keys_past_the_deadline_are_split_until_the_rows_fit():
    # 3,000 clients with ids 1..3000 and one at 10,000,000; HaloPSA answers 504 past 2,000 rows.
    ids = [*range(1, 3001), 10_000_000]
    between = re.compile(r"BETWEEN (-?\d+) AND (-?\d+)")

    def answer(request: httpx.Request) -> httpx.Response:
        sql = json.loads(request.content)[0]["sql"]
        if sql == bounds_sql():
            row = {f"{t.kind}_{p}": "0" for t in TABLES for p in ("rows", "low", "high")}
            row.update(clients_rows="3001", clients_low="1", clients_high="10000000")
            return httpx.Response(200, json={"report": {"rows": [row]}})
        low, high = map(int, between.search(sql).groups())
        rows = [{"id": str(n), "name": f"C{n}"} for n in ids if low <= n <= high]
        if len(rows) > 2000:
            return httpx.Response(504)
        return httpx.Response(200, json={"report": {"rows": rows}})

    with respx.mock() as router:
        token_route(router)
        router.post(f"{BASE}/api/Report").mock(side_effect=answer)

        async def go():
            async with client() as halo:
                return await read_via_report(halo, today=TODAY)

        found = asyncio.run(go())
    assert len(found.clients.records) == 3001 and found.splits >= 1
