"""What users and staff see of the usage records: the usage page (charts, tables, estimated share), its
CSV, GET /api/usage/ and its schema, the admin's totals; and the price table as the records use it."""

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from drf_spectacular.validation import validate_schema

from profiles.tokens import token_create
from tests.conftest import make_user
from upstream.record import StreamRecord
from usage.models import CHAT_API, CONVERSATION, V1, Price, UsageRecord
from usage.prices import call_cost, prices_forget
from usage.recording import Call, usage_record_create

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("seeded_prices")]

TODAY = datetime.now(UTC).date()


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def record(
    user,
    *,
    day: date = TODAY,
    model: str = "gpt-4o-mini",
    entry_point: str = V1,
    prompt: int = 1000,
    completion: int = 500,
    cached: int = 0,
    reasoning: int = 0,
    outcome: str = "complete",
    usage: bool = True,
    messages: list | None = None,
    content_chars: int = 0,
) -> UsageRecord:
    """A call's record, written as the app writes it (figures, estimate and cost worked out there)."""
    stream = StreamRecord(
        started_at=at(day),
        outcome=outcome,
        called_upstream=True,
        content_chars=content_chars,
        usage={
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        }
        if usage
        else None,
    )
    stream.first_chunk, stream.ended = stream.started + 0.25, stream.started + 1.5
    call = Call(
        user_id=user.pk, entry_point=entry_point, model=model, messages=messages or [], key_source="own"
    )
    return usage_record_create(call=call, record=stream)


@pytest.fixture
def alice_client(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def staff(db):
    user = make_user("sam")
    user.is_staff = user.is_superuser = True
    user.save()
    return user


@pytest.fixture
def staff_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def api(client: Client, token: str | None = None, **query):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get("/api/usage/", query, headers=headers)


# --- prices --------------------------------------------------------------------------------------


def test_the_seeded_prices_cost_a_call_at_openais_list_price(db):
    # gpt-4o: $2.50 in, $1.25 cached, $10 out per million tokens
    cost = call_cost(model="gpt-4o", day=TODAY, prompt_tokens=2000, cached_tokens=1000, completion_tokens=100)
    assert cost == Decimal("0.00475")  # 1000 x 2.5 + 1000 x 1.25 + 100 x 10, per million
    assert call_cost(
        model="gpt-4o-2024-08-06", day=TODAY, prompt_tokens=10**6, cached_tokens=0, completion_tokens=0
    )
    assert (
        call_cost(
            model="gpt-4o-2024-05-13", day=TODAY, prompt_tokens=10**6, cached_tokens=0, completion_tokens=0
        )
        == 5
    )
    # the pattern matches whole names only: a model that merely starts like a priced one has no price
    assert (
        call_cost(
            model="gpt-4o-audio-preview", day=TODAY, prompt_tokens=1, cached_tokens=0, completion_tokens=1
        )
        is None
    )
    assert call_cost(model="llama3", day=TODAY, prompt_tokens=1, cached_tokens=0, completion_tokens=1) is None


def test_a_new_price_applies_from_its_date_and_recorded_costs_stay(alice):
    before = record(alice, day=TODAY - timedelta(days=2), prompt=10**6, completion=0)
    assert before.cost == Decimal("0.15")
    Price.objects.create(
        model_pattern="gpt-4o-mini",
        input_per_million=Decimal("0.30"),
        output_per_million=Decimal("1.20"),
        effective_from=TODAY - timedelta(days=1),
    )
    after = record(alice, day=TODAY, prompt=10**6, completion=0)
    older_day = record(alice, day=TODAY - timedelta(days=3), prompt=10**6, completion=0)
    assert (after.cost, older_day.cost) == (Decimal("0.30"), Decimal("0.15"))
    before.refresh_from_db()
    assert before.cost == Decimal("0.15")  # history is not rewritten


def test_the_more_specific_pattern_wins_on_the_same_date(alice):
    day = TODAY - timedelta(days=1)
    Price.objects.create(model_pattern="my-.*", input_per_million=1, output_per_million=1, effective_from=day)
    Price.objects.create(
        model_pattern="my-model", input_per_million=2, output_per_million=2, effective_from=day
    )
    assert record(alice, model="my-model", prompt=10**6, completion=0).cost == 2
    assert record(alice, model="my-other", prompt=10**6, completion=0).cost == 1


def test_an_estimated_call_is_costed_from_its_estimate(alice):
    estimated = record(
        alice,
        usage=False,
        outcome="stopped",
        messages=[{"role": "user", "content": "x" * 400}],
        content_chars=400,
    )
    assert estimated.estimated and (estimated.prompt_tokens, estimated.completion_tokens) == (106, 100)
    assert estimated.cost == (106 * Decimal("0.15") + 100 * Decimal("0.60")) / 10**6


def test_a_price_saved_in_the_admin_applies_at_once(alice, staff_client):
    prices_forget()
    assert record(alice, model="house-model").cost is None
    response = staff_client.post(
        "/admin/usage/price/add/",
        {
            "model_pattern": "house-model",
            "input_per_million": "1",
            "cached_input_per_million": "",
            "output_per_million": "2",
            "effective_from": (TODAY - timedelta(days=1)).isoformat(),
            "note": "",
        },
    )
    assert response.status_code == 302, response.content
    assert record(alice, model="house-model", prompt=10**6, completion=10**6).cost == 3


def test_the_admin_refuses_a_pattern_that_is_not_a_regular_expression(staff_client):
    response = staff_client.post(
        "/admin/usage/price/add/",
        {
            "model_pattern": "gpt-(",
            "input_per_million": "1",
            "output_per_million": "2",
            "effective_from": "2026-01-01",
        },
    )
    assert response.status_code == 200 and "Not a regular expression" in response.content.decode()


# --- the usage page --------------------------------------------------------------------------------


def test_the_usage_page_needs_a_login(client):
    response = client.get("/usage/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_usage_page_shows_the_last_30_days_per_model_as_charts_and_tables(alice, alice_client):
    record(alice, day=TODAY, model="gpt-4o-mini", prompt=1000, completion=500)
    record(alice, day=TODAY - timedelta(days=3), model="gpt-4o", prompt=2000, completion=1000)
    record(alice, day=TODAY - timedelta(days=3), model="gpt-4o", usage=False, outcome="client_gone")
    record(alice, day=TODAY - timedelta(days=40), model="o3")  # outside the 30 days
    record(make_user("bob"), model="gpt-5")  # someone else's
    response = alice_client.get("/usage/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'aria-current="page">Usage</a>' in html  # in the nav
    # two charts, each an accessible image with a title and a description
    assert html.count('<svg class="usage-chart"') == 2
    for chart in ("chart-tokens", "chart-cost"):
        assert f'aria-labelledby="{chart}-title {chart}-desc"' in html
        assert f'<title id="{chart}-title">' in html and f'<desc id="{chart}-desc">' in html
    assert '<rect class="series-' in html and 'style="' not in html  # presentation attributes only
    rows = re.findall(r'<tr data-model="([^"]+)">', html)
    assert sorted(rows) == ["gpt-4o", "gpt-4o-mini"]  # not o3 (too old), not gpt-5 (bob's)
    assert "data-total-calls>3<" in html
    assert "data-estimated-share>33%" in html  # one call of three was cut off: estimated
    assert "Daily figures" in html


def test_the_usage_page_with_no_calls_says_so(alice_client):
    html = alice_client.get("/usage/").content.decode()
    assert "No calls in the last 30 days." in html and "No calls in this period." in html


def test_the_usage_page_is_within_the_csp(alice, alice_client):
    record(alice)
    response = alice_client.get("/usage/")
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    html = response.content.decode()
    assert "<script" not in html and "<style" not in html and " style=" not in html
    assert "/static/css/usage.css" in html


def test_the_csv_has_one_row_per_call(alice, alice_client):
    record(alice, model="gpt-4o-mini", prompt=10, completion=5)
    record(alice, model="=HYPERLINK(1)", usage=False, outcome="stopped")
    record(alice, day=TODAY - timedelta(days=31))
    response = alice_client.get("/usage/export.csv")
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="usage-')
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 2
    assert rows[0]["model"] == "gpt-4o-mini" and rows[0]["estimated"] == "no"
    assert rows[0]["cost_usd"] == "0.0000045"  # 10 x 0.15 + 5 x 0.60, per million
    assert rows[1]["model"] == "'=HYPERLINK(1)"  # not a formula in a spreadsheet
    assert rows[1]["estimated"] == "yes" and rows[1]["cost_usd"] == ""
    wider = alice_client.get("/usage/export.csv", {"from": (TODAY - timedelta(days=40)).isoformat()})
    assert len(list(csv.DictReader(io.StringIO(wider.content.decode())))) == 3


def test_a_user_sets_and_removes_their_own_budget(alice, alice_client):
    response = alice_client.post("/usage/budget/", {"monthly_budget": "12.50"})
    assert response.status_code == 302 and response["Location"] == "/usage/"
    assert alice.usage_budget.user_limit == Decimal("12.50")
    html = alice_client.get("/usage/").content.decode()
    assert "$12.50 a month, set by you" in html
    alice_client.post("/usage/budget/", {"monthly_budget": ""})
    alice.usage_budget.refresh_from_db()
    assert alice.usage_budget.user_limit is None
    refused = alice_client.post("/usage/budget/", {"monthly_budget": "-3"})
    assert refused.status_code == 400


# --- GET /api/usage/ ---------------------------------------------------------------------------------


@pytest.fixture
def alice_api(alice) -> str:
    return token_create(user=alice, name="t")[1]


def test_the_api_groups_by_day_model_or_entry_point(alice, alice_api):
    record(alice, day=TODAY, model="gpt-4o-mini", entry_point=CHAT_API, prompt=100, completion=10)
    record(alice, day=TODAY, model="my-llama", entry_point=V1, prompt=50, completion=5)
    record(alice, day=TODAY - timedelta(days=1), model="gpt-4o-mini", entry_point=CONVERSATION, usage=False,
           outcome="stopped", messages=[{"role": "user", "content": "abcd"}])  # fmt: skip
    client = Client()
    by_day = api(client, alice_api).json()
    assert set(by_day) == {"from", "to", "group_by", "results"}
    assert by_day["group_by"] == "day" and by_day["to"] == TODAY.isoformat()
    assert by_day["from"] == (TODAY - timedelta(days=29)).isoformat()
    assert [r["key"] for r in by_day["results"]] == [
        (TODAY - timedelta(days=1)).isoformat(),
        TODAY.isoformat(),
    ]
    today = by_day["results"][1]
    assert set(today) == {
        "key", "calls", "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens",
        "estimated_calls", "cost",
    }  # fmt: skip
    assert (today["calls"], today["prompt_tokens"], today["completion_tokens"]) == (2, 150, 15)
    # a group mixing a priced and an unpriced call: the priced one's cost
    assert today["cost"] == "0.000021"  # 100 x 0.15 + 10 x 0.60, per million
    assert by_day["results"][0]["estimated_calls"] == 1

    by_model = {r["key"]: r for r in api(client, alice_api, group_by="model").json()["results"]}
    assert by_model["my-llama"]["cost"] is None  # no price applies to any call of the group
    assert by_model["gpt-4o-mini"]["calls"] == 2
    by_entry = api(client, alice_api, group_by="entry_point").json()["results"]
    assert sorted(r["key"] for r in by_entry) == ["chat_api", "conversation", "v1"]


def test_the_api_period_is_given_by_from_and_to(alice, alice_api):
    record(alice, day=date(2026, 3, 1))
    record(alice, day=date(2026, 3, 2))
    body = api(Client(), alice_api, **{"from": "2026-03-02", "to": "2026-03-31"}).json()
    assert [r["key"] for r in body["results"]] == ["2026-03-02"]


@pytest.mark.parametrize(
    "query, field",
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-02-30"}, "to"),
        ({"from": "2026-03-02", "to": "2026-03-01"}, "from"),
        ({"group_by": "week"}, "group_by"),
        ({"from": "2000-01-01", "to": "2026-01-01"}, "to"),
    ],
)
def test_bad_parameters_are_400_in_the_one_error_shape(alice, alice_api, query, field):
    response = api(Client(), alice_api, **query)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_request" and field in body["fields"]
    assert {"message", "code", "settings_url"} <= set(body)


def test_the_api_needs_authentication(db):
    response = api(Client())
    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"


def test_only_staff_may_read_another_users_usage(alice, alice_api, staff):
    bob = make_user("bob")
    record(bob, prompt=7, completion=0)
    refused = api(Client(), alice_api, user="bob")
    assert refused.status_code == 403 and refused.json()["code"] == "permission_denied"
    assert api(Client(), alice_api, user=str(alice.pk)).status_code == 200  # naming oneself is fine
    staff_token = token_create(user=staff, name="t")[1]
    for named in ("bob", str(bob.pk)):
        [row] = api(Client(), staff_token, user=named).json()["results"]
        assert row["prompt_tokens"] == 7
    unknown = api(Client(), staff_token, user="nobody")
    assert unknown.status_code == 400 and "user" in unknown.json()["fields"]


def test_the_api_works_with_a_session_too(alice, alice_client):
    record(alice)
    assert api(alice_client).json()["results"][0]["calls"] == 1


def test_the_api_is_in_the_openapi_schema(db):
    schema = Client().get("/api/schema/", {"format": "json"}).json()
    validate_schema(schema)
    operation = schema["paths"]["/api/usage/"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"from", "to", "group_by", "user"}
    report = schema["components"]["schemas"]["UsageReport"]
    assert set(report["properties"]) == {"from", "to", "group_by", "results"}
    group = schema["components"]["schemas"]["UsageGroup"]
    assert set(group["properties"]) == {
        "key", "calls", "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens",
        "estimated_calls", "cost",
    }  # fmt: skip
    assert group["properties"]["cost"]["nullable"] is True


# --- the admin ------------------------------------------------------------------------------------------


def test_the_admin_shows_records_read_only(alice, staff_client):
    usage = record(alice)
    listing = staff_client.get("/admin/usage/usagerecord/")
    assert listing.status_code == 200 and "Totals per user and model" in listing.content.decode()
    assert "Add usage record" not in listing.content.decode()
    page = staff_client.get(f"/admin/usage/usagerecord/{usage.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert staff_client.post(f"/admin/usage/usagerecord/{usage.pk}/delete/").status_code == 403
    assert staff_client.get("/admin/usage/usagerecord/add/").status_code == 403


def test_the_admin_totals_per_user_and_model_for_a_period_sort_by_any_column(alice, staff, staff_client):
    bob = make_user("bob")
    record(alice, model="gpt-4o", prompt=5000, completion=100)
    record(alice, model="gpt-4o-mini", prompt=10, completion=1)
    record(bob, model="gpt-4o-mini", prompt=900, completion=900)
    record(bob, model="gpt-4o-mini", day=TODAY - timedelta(days=60), prompt=10**6, completion=0)  # outside
    url = "/admin/usage/usagerecord/totals/"
    html = staff_client.get(url).content.decode()
    order = re.findall(r'\?user=\d+">(\w+)</a></th>\s*<td>([\w.-]+)</td>', html)
    assert order == [
        ("alice", "gpt-4o"),
        ("bob", "gpt-4o-mini"),
        ("alice", "gpt-4o-mini"),
    ]  # by cost, biggest first
    by_prompt = staff_client.get(url, {"o": "prompt_tokens"}).content.decode()
    assert re.findall(r'\?user=\d+">(\w+)</a></th>\s*<td>([\w.-]+)</td>', by_prompt)[0] == (
        "alice",
        "gpt-4o-mini",
    )
    by_user = staff_client.get(url, {"o": "user"}).content.decode()
    assert [u for u, _ in re.findall(r'\?user=\d+">(\w+)</a></th>\s*<td>([\w.-]+)</td>', by_user)] == [
        "alice", "alice", "bob",
    ]  # fmt: skip
    wider = staff_client.get(url, {"from": (TODAY - timedelta(days=90)).isoformat()}).content.decode()
    assert "1,000,900" in wider  # bob's older call, now in the period
    assert 'aria-sort="descending"' in html
    assert staff_client.get(url, {"from": "junk"}).status_code == 200  # said on the page, not a 500


def test_the_admin_totals_are_staff_only(alice_client):
    response = alice_client.get("/admin/usage/usagerecord/totals/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_staff_set_a_budget_in_the_admin(alice, staff_client):
    response = staff_client.post("/admin/usage/budget/add/", {"user": alice.pk, "staff_limit": "20.00"})
    assert response.status_code == 302, response.content
    assert alice.usage_budget.staff_limit == Decimal("20.00") and alice.usage_budget.limit == Decimal("20.00")


def test_deleting_a_user_deletes_their_records(alice):
    record(alice)
    get_user_model().objects.filter(pk=alice.pk).delete()
    assert not UsageRecord.objects.exists()
