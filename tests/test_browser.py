"""The pages people click, in real headless Chromium, against the app under uvicorn and the fake upstream.

Sync tests on purpose: Playwright's sync API cannot run inside the asyncio loop that the async tests use.
"""

import json
import time

import pytest

from profiles.models import Profile
from tests.browser import log_in, off_thread, screenshot
from tests.conftest import ALICE_KEY, PASSWORD
from tests.fake_openai import Scenario

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = pytest.mark.browser

ANSWER = [
    "Here is a small Python function that **reverses** a string.\n\n",
    "```python\ndef reverse(text: str) -> str:\n",
    '    return text[::-1]\n\nprint(reverse("streaming"))  # gnimaerts\n```\n\n',
    "A few things worth knowing:\n\n",
    "1. Slicing with `[::-1]` creates a *new* string.\n",
    '2. `"".join(reversed(text))` reads just as well.\n\n',
    "| Approach | Speed |\n|---|---:|\n| `text[::-1]` | fastest |\n| `reversed()` | fast |\n\n",
    "> See the [Python docs](https://docs.python.org/3/library/stdtypes.html) for more.",
]


@pytest.fixture(autouse=True)
def _no_title_requests(settings) -> None:
    """A generated title is one more upstream request after the first answer: these tests count theirs."""
    settings.CONVERSATION_AUTO_TITLE = False


def send(page, text: str) -> None:
    page.fill("#prompt", text)
    page.keyboard.press("Enter")


def answer_text(page) -> str:
    return page.locator("[data-answer]").last.inner_text()


def wait_for_state(page, state: str) -> None:
    page.wait_for_selector(f".turn-assistant[data-state={state}]")


def test_log_in_and_save_a_key_on_the_settings_page(bob, browser_page):
    page = browser_page
    log_in(page, "bob", PASSWORD)
    assert page.locator("[data-missing-key]").is_visible()

    page.click("nav >> text=Settings")
    page.wait_for_url("**/profile/settings/")
    new_key = "sk-bob-browser-0123456789abcd"
    page.fill("#id_api_key", new_key)
    page.fill("#id_organization_id", "org-bob42")
    assert page.is_checked("#id_check_key")  # a new key is checked with the upstream by default
    page.click("form.form button[type=submit]")

    page.wait_for_selector(".flash-success")
    assert "Your OpenAI API key was saved (sk-...abcd) and OpenAI accepted it." in page.inner_text(".flash")
    assert page.inner_text("[data-key-hint]").strip() == "sk-...abcd"
    assert page.input_value("#id_api_key") == ""  # write-only: never filled back in
    assert new_key not in page.content()
    screenshot(page, "settings.png")

    profile = off_thread(lambda: Profile.objects.get(user__username="bob"))
    assert profile.openai_api_key == new_key
    assert profile.openai_organization_id == "org-bob42"


def test_answer_appears_as_it_streams(alice, fake_openai, browser_page):
    page = browser_page
    fake_openai.scenario = Scenario(pieces=ANSWER, gap=0.3)
    log_in(page, "alice", PASSWORD)
    requests = []
    page.on("request", lambda request: requests.append(request) if request.method == "POST" else None)

    send(page, "How do I reverse a string in Python?")
    seen: list[str] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        done = page.locator(".turn-assistant[data-state=done]").count() == 1
        text = answer_text(page)
        if text and (not seen or seen[-1] != text):
            seen.append(text)
        if done:
            break
        time.sleep(0.05)

    partial = seen[:-1]
    assert len(partial) >= 3, seen  # several states before the end: pieces rendered as they came
    assert all(len(a) < len(b) for a, b in zip(seen, seen[1:], strict=False)), seen
    assert fake_openai.streams_completed == 1

    # Rendered as Markdown: a code block, a list, a table, a safe link.
    assert page.locator("[data-answer] pre code.language-python").inner_text().startswith("def reverse")
    assert page.locator("[data-answer] ol li").count() == 2
    assert page.locator("[data-answer] table td").first.inner_text() == "text[::-1]"
    link = page.locator("[data-answer] a")
    assert link.get_attribute("href") == "https://docs.python.org/3/library/stdtypes.html"
    assert link.get_attribute("rel") == "noopener noreferrer nofollow"

    # The saved conversation's streaming endpoint: the question, the model and temperature picked, the
    # session cookie and the CSRF header.
    (request,) = [r for r in requests if r.url.endswith("/messages/")]
    body = json.loads(request.post_data)
    assert body == {
        "content": "How do I reverse a string in Python?",
        "model": "gpt-4o-mini",
        "temperature": 0.5,
    }
    assert request.headers["x-csrftoken"]
    assert request.headers["accept"] == "text/event-stream"
    screenshot(page, "chat.png")


def test_the_conversation_is_sent_again_with_the_next_message(alice, fake_openai, browser_page):
    page = browser_page
    fake_openai.scenario = Scenario(pieces=["First ", "answer."])
    log_in(page, "alice", PASSWORD)
    send(page, "One")
    wait_for_state(page, "done")
    send(page, "Two")
    expect(page.locator(".turn-assistant[data-state=done]")).to_have_count(2)
    sent = fake_openai.last_request.json["messages"]
    assert [(m["role"], m["content"]) for m in sent[1:]] == [
        ("user", "One"),
        ("assistant", "First answer."),
        ("user", "Two"),
    ]


def test_stop_cancels_the_upstream_stream(alice, fake_openai, browser_page):
    page = browser_page
    fake_openai.scenario = Scenario(pieces=[f"word{i} " for i in range(100)], gap=0.1)
    log_in(page, "alice", PASSWORD)
    send(page, "Count slowly")
    expect(page.locator("[data-answer]")).to_contain_text("word3")
    page.click("[data-stop]")

    fake_openai.wait_for_sync(lambda s: s.streams_cancelled == 1, timeout=5)
    wait_for_state(page, "stopped")
    assert page.locator(".turn-note-stopped").inner_text() == "Stopped."
    assert page.locator("[data-send]").is_visible()
    assert "word99" not in answer_text(page)
    assert fake_openai.streams_completed == 0
    screenshot(page, "chat-stopped.png")


def test_missing_key_error_links_to_the_settings_page(bob, fake_openai, browser_page):
    page = browser_page
    log_in(page, "bob", PASSWORD)
    send(page, "Hello?")

    error = page.locator(".error-box")
    error.wait_for()
    assert "OpenAI API Key not found" in error.inner_text()
    screenshot(page, "chat-error.png")
    page.click("[data-error-link]")
    page.wait_for_url("**/profile/settings/")
    assert page.locator("h1").inner_text() == "Settings"
    assert fake_openai.requests == []  # never reached the upstream


def test_truncated_answer_is_shown_as_cut_off(alice, fake_openai, browser_page):
    page = browser_page
    fake_openai.scenario = Scenario(pieces=["The answer ", "begins ", "and then"], gap=0.05, fail_after=2)
    log_in(page, "alice", PASSWORD)
    send(page, "Tell me everything")

    wait_for_state(page, "truncated")
    assert "cut off" in page.locator(".turn-note-truncated").inner_text()
    assert answer_text(page).startswith("The answer begins")
    screenshot(page, "chat-truncated.png")


def test_html_in_an_answer_never_runs(alice, fake_openai, browser_page):
    page = browser_page
    fake_openai.scenario = Scenario(
        pieces=[
            "Look: <script>window.__pwned=1</script>\n\n",
            '<img src=x onerror="window.__pwned=1">\n\n',
            '[click me](javascript:window.__pwned=1) and **<b onmouseover="window.__pwned=1">bold</b>**\n\n',
            "```html\n<script>window.__pwned=1</script>\n```",
        ]
    )
    log_in(page, "alice", PASSWORD)
    send(page, "Show me some HTML")
    wait_for_state(page, "done")
    page.locator("[data-answer]").hover()
    page.wait_for_timeout(300)  # time for anything that would fire (onerror) to fire

    assert page.evaluate("window.__pwned") is None
    answer = page.locator("[data-answer]")
    assert answer.locator("script, img, b, [onerror], [onmouseover]").count() == 0
    assert answer.locator("a").count() == 0  # javascript: links are shown as text only
    text = answer.inner_text()
    assert "<script>window.__pwned=1</script>" in text
    assert '<img src=x onerror="window.__pwned=1">' in text


def test_reasoning_models_have_no_temperature_control(alice, browser_page):
    page = browser_page
    log_in(page, "alice", PASSWORD)
    assert page.locator("[data-temperature-input]").is_enabled()
    page.select_option("[data-model]", "o4-mini")
    assert page.locator("[data-temperature-input]").is_disabled()
    assert page.locator("[data-temperature-hint]").is_visible()


def test_key_is_never_in_any_page(alice, browser_page):
    page = browser_page
    log_in(page, "alice", PASSWORD)
    for path in ("/", "/profile/settings/"):
        page.goto(path)
        assert ALICE_KEY not in page.content()
        assert ALICE_KEY[3:-4] not in page.content()


MARKDOWN_CASES = {
    "# Title\n\nSome *em*, **strong**, `code` and ~~gone~~.": (
        '<h3 class="md-h1">Title</h3><p>Some <em>em</em>, <strong>strong</strong>, <code>code</code> and '
        "<del>gone</del>.</p>"
    ),
    "- a\n  - b\n- c": "<ul><li>a<ul><li>b</li></ul></li><li>c</li></ul>",
    "Steps:\n3. x\n4. y\n\nafter": '<p>Steps:</p><ol start="3"><li>x</li><li>y</li></ol><p>after</p>',
    "1. one\n\n   more\n2. two": "<ol><li><p>one</p><p>more</p></li><li>two</li></ol>",
    "line one\nline two": "<p>line one<br>line two</p>",
    "> quote\n\n---\n\n\\*not em\\* and my_var_name": (
        "<blockquote><p>quote</p></blockquote><hr><p>*not em* and my_var_name</p>"
    ),
    "| a | b |\n|:-:|--:|\n| 1 | 2 |": (
        '<div class="table-wrap" tabindex="0"><table><thead><tr><th class="align-center">a</th>'
        '<th class="align-right">b</th></tr></thead><tbody><tr><td class="align-center">1</td>'
        '<td class="align-right">2</td></tr></tbody></table></div>'
    ),
    "<b>x</b> & <script>alert(1)</script>": (
        "<p>&lt;b&gt;x&lt;/b&gt; &amp; &lt;script&gt;alert(1)&lt;/script&gt;</p>"
    ),
    "[a](javascript:alert(1)) ![i](https://x.example/i.png)": (
        '<p><span>a</span> <a href="https://x.example/i.png" rel="noopener noreferrer nofollow" '
        'target="_blank">i</a></p>'
    ),
}


def test_markdown_renderer_builds_only_safe_elements(browser_page):
    page = browser_page
    page.goto("/accounts/login/")  # any page of ours: the module is imported from the app's origin
    rendered = page.evaluate(
        """async (sources) => {
          const { renderMarkdown } = await import("/static/js/markdown.js");
          return sources.map((source) => {
            const box = document.createElement("div");
            box.append(renderMarkdown(source));
            return box.innerHTML;
          });
        }""",
        list(MARKDOWN_CASES),
    )
    assert dict(zip(MARKDOWN_CASES, rendered, strict=False)) == MARKDOWN_CASES


def test_unclosed_code_fence_renders_while_streaming(browser_page):
    page = browser_page
    page.goto("/accounts/login/")
    html = page.evaluate("""async () => {
      const { renderMarkdown } = await import("/static/js/markdown.js");
      const box = document.createElement("div");
      box.append(renderMarkdown("Code:\\n```js\\nlet x = '<img src=x onerror=alert(1)>';"));
      return box.innerHTML;
    }""")
    assert (
        '<pre tabindex="0"><code class="language-js">'
        "let x = '&lt;img src=x onerror=alert(1)&gt;';</code></pre>" in html
    )
