"""The usage page in real headless Chromium: the charts drawn, no CSP violation, no serious
accessibility violation (axe-core, light and dark), the nav link; and its screenshot for the docs."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from tests.axe import axe_violations, describe
from tests.browser import log_in, off_thread, screenshot
from tests.conftest import PASSWORD
from upstream.record import StreamRecord
from usage.recording import Call, usage_record_create

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("seeded_prices")]

MODELS = {
    "gpt-4o-mini": (900, 2400),
    "gpt-4o": (1500, 700),
    "o4-mini": (400, 2200),
    "my-local-llama": (300, 500),
}


def a_month_of_calls(user) -> None:
    """Thirty days of calls over four models (one with no price), a few of them cut off."""
    rng = random.Random(12)
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)

    def create() -> None:
        for days_ago in range(30):
            for model, (prompt, completion) in MODELS.items():
                for _ in range(rng.randrange(0, 4) if days_ago % 7 not in (5, 6) else rng.randrange(0, 2)):
                    cut = rng.random() < 0.12
                    record = StreamRecord(
                        started_at=today - timedelta(days=days_ago, minutes=rng.randrange(600)),
                        outcome="stopped" if cut else "complete",
                        called_upstream=True,
                        content_chars=rng.randrange(400, 4000) if cut else 0,
                        usage=None
                        if cut
                        else {
                            "prompt_tokens": int(prompt * rng.uniform(0.3, 3)),
                            "completion_tokens": int(completion * rng.uniform(0.2, 2)),
                        },
                    )
                    record.first_chunk, record.ended = record.started + 0.4, record.started + 6.0
                    call = Call(
                        user_id=user.pk,
                        entry_point=rng.choice(["chat_api", "v1", "conversation"]),
                        model=model,
                        messages=[{"role": "user", "content": "x" * prompt * 4}],
                        key_source="own",
                    )
                    usage_record_create(call=call, record=record)

    off_thread(create)


def test_the_usage_page_draws_its_charts_within_the_csp(alice, browser_page):
    a_month_of_calls(alice)
    page = browser_page
    log_in(page, "alice", PASSWORD)
    page.get_by_role("link", name="Usage").click()
    page.wait_for_url("**/usage/")
    expect(page.get_by_role("heading", name="Usage", level=1)).to_be_visible()
    tokens_chart = page.get_by_role("img", name="Tokens per day")
    expect(tokens_chart).to_be_visible()
    expect(page.get_by_role("img", name="Cost per day")).to_be_visible()
    assert page.locator("svg.usage-chart rect").count() > 60
    # The bars are coloured by the stylesheet (no style attribute anywhere): not black, not transparent.
    fill = page.locator(".chart-bars rect.series-0").first.evaluate("e => getComputedStyle(e).fill")
    assert fill == "rgb(0, 114, 178)"
    rows = page.locator(".usage-table tbody tr[data-model]")
    expect(rows).to_have_count(4)
    expect(page.locator("tr[data-model=my-local-llama] td").last).to_have_text("—")  # no price: no cost
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    assert download.value.suggested_filename.startswith("usage-")
    page.set_viewport_size({"width": 1280, "height": 1400})
    screenshot(page, "usage.png")  # test-artifacts/usage.png; docs/screenshots/usage.png is a copy of it


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_usage_page_has_no_serious_accessibility_violation(alice, browser_page, scheme):
    a_month_of_calls(alice)
    page = browser_page
    page.emulate_media(color_scheme=scheme)
    log_in(page, "alice", PASSWORD)
    page.goto("/usage/")
    page.locator(".usage-daily summary").click()  # the daily table open too
    violations = axe_violations(page)
    assert not violations, describe(violations)
    page.goto("/usage/")
    page.fill("#id_monthly_budget", "-1")
    page.get_by_role("button", name="Save budget").click()
    violations = axe_violations(page)  # the form with its error
    assert not violations, describe(violations)
