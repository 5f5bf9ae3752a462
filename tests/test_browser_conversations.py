"""The chat page with saved conversations, in real headless Chromium against the app under uvicorn and the
fake upstream: the sidebar, URLs, reloads mid-answer and after Stop, branches, errors that point to their
fix, export and import on the settings page, and axe-core on every page in light and dark mode.

Sync tests on purpose: Playwright's sync API cannot run inside the asyncio loop that the async tests use.
"""

import json
import re
import time
import uuid

import pytest

from conversations.models import Conversation, Message
from conversations.services import conversation_create, conversation_update, message_add, message_update
from tests.axe import axe_violations, describe
from tests.browser import log_in, off_thread, screenshot
from tests.conftest import PASSWORD, make_user
from tests.fake_openai import Scenario

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = pytest.mark.browser

SLOW_COUNT = [f"word{i} " for i in range(300)]


@pytest.fixture(autouse=True)
def _no_title_requests(settings) -> None:
    """A generated title is one more upstream request after the first answer: these tests count theirs."""
    settings.CONVERSATION_AUTO_TITLE = False


def send(page, text: str) -> None:
    page.fill("#prompt", text)
    page.keyboard.press("Enter")


def answer(page):
    return page.locator("[data-answer]").last


def wait_for_state(page, state: str, timeout: float = 10_000) -> None:
    page.locator(f".turn-assistant[data-state={state}]").last.wait_for(timeout=timeout)


def open_page(page, path: str) -> None:
    page.goto(path)
    page.wait_for_selector("#chat[data-ready=true][data-shown]")


def conversation_id_in(url: str) -> str:
    match = re.search(r"/c/([0-9a-f-]{36})/$", url)
    assert match, url
    return match.group(1)


def saved_answer(conversation_id: str) -> Message:
    return off_thread(
        lambda: Message.objects.filter(conversation_id=conversation_id, role="assistant").latest("created_at")
    )


def make_conversation(owner, title: str, *, pinned: bool = False, turns: int = 1) -> Conversation:
    def create() -> Conversation:
        conversation = conversation_create(owner=owner, title=title, model="gpt-4o-mini")
        parent = None
        for i in range(turns):
            question = message_add(
                conversation=conversation, parent=parent, role="user", content=f"{title} {i}?"
            )
            parent = message_add(
                conversation=conversation, parent=question, role="assistant", content=f"About {title} {i}."
            )
        if pinned:
            conversation_update(conversation=conversation, pinned=True)
        return conversation

    return off_thread(create)


# --- The URL names the conversation --------------------------------------------------------------


def test_a_new_chat_gets_its_own_url_and_a_place_in_the_sidebar(alice, fake_openai, browser_page):
    page = browser_page
    fake_openai.scenario = Scenario(pieces=["Hello ", "there."])
    log_in(page, "alice", PASSWORD)
    assert page.locator("h1").inner_text() == "New chat"

    send(page, "Say hello\nplease")
    wait_for_state(page, "done")
    page.wait_for_url(re.compile(r"/c/[0-9a-f-]{36}/$"))
    conversation_id = conversation_id_in(page.url)

    current = page.locator(".conversation-link[aria-current=page]")
    expect(current).to_have_text("Say hello")  # the first line of the first question, at once
    assert current.get_attribute("href") == f"/c/{conversation_id}/"
    expect(page.locator("h1")).to_have_text("Say hello")
    assert page.locator("h1").count() == 1  # the page keeps its h1 once the chat has messages
    assert page.title().startswith("Say hello")
    assert saved_answer(conversation_id).content == "Hello there."

    # The request: the conversation's streaming endpoint, the session cookie and the CSRF header.
    request = fake_openai.last_request.json
    assert [m["role"] for m in request["messages"]] == ["system", "user"]
    assert request["messages"][1]["content"] == "Say hello\nplease"


def test_reload_back_forward_and_another_tab_show_the_same_conversation(alice, fake_openai, browser_page):
    page = browser_page
    first = make_conversation(alice, "Tides")
    second = make_conversation(alice, "Volcanoes")
    log_in(page, "alice", PASSWORD)
    expect(page.locator(".conversation-link")).to_have_count(2)
    assert page.locator(".conversation-title").all_inner_texts() == ["Volcanoes", "Tides"]  # newest first

    page.click(".conversation-link >> text=Tides")
    page.wait_for_url(f"**/c/{first.id}/")
    expect(page.locator(".turn-user .turn-body")).to_have_text(["Tides 0?"])
    expect(page.locator(".conversation-link[aria-current=page]")).to_have_text("Tides")

    page.click(".conversation-link >> text=Volcanoes")
    page.wait_for_url(f"**/c/{second.id}/")
    expect(answer(page)).to_have_text("About Volcanoes 0.")

    page.go_back()
    page.wait_for_url(f"**/c/{first.id}/")
    expect(answer(page)).to_have_text("About Tides 0.")
    expect(page.locator(".conversation-link[aria-current=page]")).to_have_text("Tides")
    page.go_back()
    page.wait_for_url(re.compile(r"/$"))
    expect(page.locator("[data-empty]")).to_be_visible()
    page.go_forward()
    expect(answer(page)).to_have_text("About Tides 0.")

    page.reload()
    page.wait_for_selector("#chat[data-ready=true]")
    expect(answer(page)).to_have_text("About Tides 0.")

    other = page.context.new_page()  # a second device: the same URL shows the same thing
    open_page(other, f"/c/{first.id}/")
    expect(answer(other)).to_have_text("About Tides 0.")


def test_another_user_cannot_open_the_url(alice, bob, browser_page):
    page = browser_page
    conversation = make_conversation(alice, "Private")
    log_in(page, "bob", PASSWORD)
    response = page.goto(f"/c/{conversation.id}/")
    assert response.status == 404
    assert page.locator("h1").inner_text() == "Page not found"
    assert "Private" not in page.content()
    # An unknown id answers the same page.
    assert page.goto(f"/c/{uuid.uuid4()}/").status == 404


# --- What was on screen survives a reload -----------------------------------------------------------


def test_reload_mid_answer_keeps_what_was_on_screen(alice, fake_openai, browser_page):
    page = browser_page
    fake_openai.scenario = Scenario(pieces=SLOW_COUNT, gap=0.05)
    log_in(page, "alice", PASSWORD)
    send(page, "Count slowly")
    expect(answer(page)).to_contain_text("word12")
    seen = answer(page).inner_text()

    page.reload()
    page.wait_for_selector("#chat[data-ready=true]")
    # The server kept what it had sent, and marks the answer cut off: the client went away.
    wait_for_state(page, "truncated")
    after = answer(page).inner_text()
    assert after.startswith(seen), (seen, after)
    assert "cut off" in page.locator(".turn-note-truncated").inner_text()
    saved = saved_answer(conversation_id_in(page.url))
    assert saved.status == "interrupted"
    assert saved.content.startswith(seen)
    fake_openai.wait_for_sync(lambda s: s.open_streams == 0, timeout=5)


def test_reload_after_stop_keeps_what_was_on_screen(alice, fake_openai, browser_page):
    page = browser_page
    fake_openai.scenario = Scenario(pieces=SLOW_COUNT, gap=0.05)
    log_in(page, "alice", PASSWORD)
    send(page, "Count slowly")
    expect(answer(page)).to_contain_text("word8")
    page.click("[data-stop]")

    wait_for_state(page, "stopped")
    fake_openai.wait_for_sync(lambda s: s.streams_cancelled == 1, timeout=5)
    assert page.locator(".turn-note-stopped").inner_text() == "Stopped."
    expect(page.locator("[data-announce]")).to_have_text("Stopped.")
    seen = answer(page).inner_text()
    assert "word8" in seen and "word299" not in seen

    page.reload()
    page.wait_for_selector("#chat[data-ready=true]")
    wait_for_state(page, "stopped")
    assert answer(page).inner_text() == seen
    assert page.locator(".turn-note-stopped").inner_text() == "Stopped."
    saved = saved_answer(conversation_id_in(page.url))
    assert saved.status == "stopped"
    assert saved.content.strip() == seen.strip()


def test_stop_from_another_tab_stops_the_answer(alice, fake_openai, browser_page):
    page = browser_page
    fake_openai.scenario = Scenario(pieces=SLOW_COUNT, gap=0.05)
    log_in(page, "alice", PASSWORD)
    send(page, "Count slowly")
    expect(answer(page)).to_contain_text("word3")
    conversation_id = conversation_id_in(page.url)

    other = page.context.new_page()
    open_page(other, f"/c/{conversation_id}/")
    expect(other.locator("[data-stop]")).to_be_visible()  # it sees the answer still being written
    other.click("[data-stop]")

    wait_for_state(page, "stopped")
    wait_for_state(other, "stopped")
    fake_openai.wait_for_sync(lambda s: s.streams_cancelled == 1, timeout=5)
    assert answer(other).inner_text() == answer(page).inner_text()


def test_a_cut_off_answer_keeps_the_text_before_the_cut(alice, fake_openai, browser_page):
    page = browser_page
    fake_openai.scenario = Scenario(pieces=["The answer ", "begins ", "and then"], gap=0.05, fail_after=2)
    log_in(page, "alice", PASSWORD)
    send(page, "Tell me everything")

    wait_for_state(page, "truncated")
    note = page.locator(".turn-note-truncated").inner_text()
    assert note.startswith("Answer cut off")
    assert answer(page).inner_text().startswith("The answer begins")
    expect(page.locator("[data-announce]")).to_contain_text("Answer cut off")

    page.reload()
    page.wait_for_selector("#chat[data-ready=true]")
    wait_for_state(page, "truncated")
    assert answer(page).inner_text().startswith("The answer begins")


def test_an_answer_goes_on_while_another_conversation_is_open(alice, fake_openai, browser_page):
    page = browser_page
    make_conversation(alice, "Other")
    log_in(page, "alice", PASSWORD)
    fake_openai.scenario = Scenario(pieces=[f"w{i} " for i in range(60)], gap=0.05)
    send(page, "Count")
    expect(answer(page)).to_contain_text("w5")
    url = page.url

    page.click(".conversation-link >> text=Other")
    expect(answer(page)).to_have_text("About Other 0.")
    expect(page.locator("[data-send]")).to_be_visible()  # this one has no answer in progress
    page.go_back()
    page.wait_for_url(url)
    expect(answer(page)).to_contain_text("w20")  # still arriving, shown again
    expect(page.locator("[data-stop]")).to_be_visible()
    wait_for_state(page, "done")
    expect(answer(page)).to_contain_text("w59")
    assert fake_openai.streams_completed == 1
    assert saved_answer(conversation_id_in(url)).status == "complete"


# --- Branches ----------------------------------------------------------------------------------------


def test_a_branch_survives_a_reload(alice, fake_openai, browser_page):
    page = browser_page
    fake_openai.scenario = Scenario(pieces=["First answer."])
    log_in(page, "alice", PASSWORD)
    send(page, "Question one")
    wait_for_state(page, "done")
    expect(page.locator(".turn-user [aria-label='Edit this question']")).to_be_enabled()

    # Edit the question: a new version under the same parent, answered.
    fake_openai.scenario = Scenario(pieces=["Second answer."])
    page.click(".turn-user [aria-label='Edit this question']")
    page.fill(".edit-form textarea", "Question one, edited")
    page.keyboard.press("Enter")
    expect(answer(page)).to_have_text("Second answer.")
    wait_for_state(page, "done")
    user_versions = page.locator(".turn-user [data-branch-count]")
    expect(user_versions).to_contain_text("2/2")
    expect(user_versions).to_contain_text("Version 2 of 2")

    # Regenerate the answer: a new version of it.
    fake_openai.scenario = Scenario(pieces=["Third answer."])
    page.click("[data-regenerate]")
    expect(answer(page)).to_have_text("Third answer.")
    expect(page.locator(".turn-assistant [data-branch-count]")).to_contain_text("2/2")
    screenshot(page, "chat-branches.png")

    page.reload()
    page.wait_for_selector("#chat[data-ready=true][data-shown]")
    expect(page.locator(".turn-user .turn-body")).to_have_text(["Question one, edited"])
    expect(answer(page)).to_have_text("Third answer.")
    expect(page.locator(".turn-assistant [data-branch-count]")).to_contain_text("2/2")

    # Back to the first question, by keyboard: its branch (its own answer) shows, and stays after a reload.
    page.focus(".turn-user [data-branch-prev]")
    page.keyboard.press("Enter")
    expect(page.locator(".turn-user .turn-body")).to_have_text(["Question one"])
    expect(answer(page)).to_have_text("First answer.")
    expect(page.locator(".turn-user [data-branch-count]")).to_contain_text("1/2")
    # The arrow used is now at its end: the focus moved to the other one, not lost.
    assert page.evaluate("document.activeElement.hasAttribute('data-branch-next')")
    expect(page.locator("[data-announce]")).to_have_text("Version 1 of 2.")

    page.reload()
    page.wait_for_selector("#chat[data-ready=true][data-shown]")
    expect(page.locator(".turn-user .turn-body")).to_have_text(["Question one"])
    expect(answer(page)).to_have_text("First answer.")

    # The next question follows the branch shown.
    fake_openai.scenario = Scenario(pieces=["Fourth answer."])
    send(page, "Question two")
    expect(answer(page)).to_have_text("Fourth answer.")
    sent = fake_openai.last_request.json["messages"]
    assert [(m["role"], m["content"]) for m in sent[1:]] == [
        ("user", "Question one"),
        ("assistant", "First answer."),
        ("user", "Question two"),
    ]


# --- The sidebar -------------------------------------------------------------------------------------


def test_sidebar_rename_pin_archive_and_delete_by_keyboard(alice, browser_page):
    page = browser_page
    tides = make_conversation(alice, "Tides")
    make_conversation(alice, "Volcanoes")
    log_in(page, "alice", PASSWORD)
    expect(page.locator(".conversation-link")).to_have_count(2)
    expect(page.locator(".sidebar-heading")).to_have_text(["Recent"], ignore_case=True)

    def options_for(title: str):
        return page.get_by_role("button", name=f"Options for “{title}”")

    # Rename: Options, then Rename, type, Enter.
    options_for("Tides").focus()
    page.keyboard.press("Enter")
    expect(options_for("Tides")).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_role("button", name="Rename", exact=True)).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Control+A")
    page.keyboard.type("Ocean tides")
    page.keyboard.press("Enter")
    expect(page.locator(".conversation-title")).to_have_text(["Volcanoes", "Ocean tides"])
    expect(options_for("Ocean tides")).to_be_focused()
    assert off_thread(lambda: Conversation.objects.get(pk=tides.pk).title) == "Ocean tides"

    # Pin: it moves to the top, under "Pinned".
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Pin", exact=True).click()
    expect(page.locator(".sidebar-heading")).to_have_text(["Pinned", "Recent"], ignore_case=True)
    expect(page.locator(".conversation-title")).to_have_text(["Ocean tides", "Volcanoes"])
    expect(page.locator("[data-list-status]")).to_have_text("Pinned.")

    # Escape closes the options and gives the focus back.
    options_for("Volcanoes").focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    expect(options_for("Volcanoes")).to_have_attribute("aria-expanded", "false")
    expect(options_for("Volcanoes")).to_be_focused()

    # Archive: gone from the list, listed under "Archived".
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Archive", exact=True).click()
    expect(page.locator(".conversation-title")).to_have_text(["Ocean tides"])
    page.click("[data-show-archived]")
    expect(page.locator("[data-show-archived]")).to_have_attribute("aria-pressed", "true")
    expect(page.locator(".conversation-title")).to_have_text(["Volcanoes"])
    page.click("[data-show-archived]")

    # Delete asks first; dismissing keeps it.
    page.once("dialog", lambda dialog: dialog.dismiss())
    options_for("Ocean tides").click()
    page.get_by_role("button", name="Delete", exact=True).click()
    expect(page.locator(".conversation-title")).to_have_text(["Ocean tides"])
    assert off_thread(lambda: Conversation.objects.filter(pk=tides.pk).exists())

    # Open it, then delete it: the page goes back to a new chat.
    page.click(".conversation-link >> text=Ocean tides")
    page.wait_for_url(f"**/c/{tides.id}/")
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    options_for("Ocean tides").click()
    page.get_by_role("button", name="Delete", exact=True).click()
    page.wait_for_url(re.compile(r"/$"))
    assert questions == ["Delete “Ocean tides”? Its messages are deleted too; this cannot be undone."]
    expect(page.locator(".conversation-link")).to_have_count(0)
    assert not off_thread(lambda: Conversation.objects.filter(pk=tides.pk).exists())


def test_sidebar_search_finds_titles_and_message_text(alice, browser_page):
    page = browser_page
    make_conversation(alice, "Tides")
    make_conversation(alice, "Volcanoes")
    log_in(page, "alice", PASSWORD)
    expect(page.locator(".conversation-link")).to_have_count(2)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url) if "search=" in request.url else None)

    page.fill("[data-search]", "volcan")
    expect(page.locator(".conversation-title")).to_have_text(["Volcanoes"])
    expect(page.locator("[data-list-status]")).to_have_text("1 conversation found.")
    assert any("search=volcan" in url for url in requests)

    page.fill("[data-search]", "About Tides")  # a message's text
    expect(page.locator(".conversation-title")).to_have_text(["Tides"])
    page.fill("[data-search]", "nothing like this")
    expect(page.locator("[data-list-status]")).to_have_text("No conversations match.")
    page.fill("[data-search]", "")
    expect(page.locator(".conversation-link")).to_have_count(2)


def test_sidebar_and_composer_are_reachable_by_keyboard(alice, browser_page):
    page = browser_page
    conversation = make_conversation(alice, "Tides")
    log_in(page, "alice", PASSWORD)
    expect(page.locator(".conversation-link")).to_have_count(1)
    # From the top of the page: the skip link first, then the header, the sidebar, the composer.
    page.focus(".brand")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    reached: list[str] = []
    for _ in range(30):
        page.keyboard.press("Tab")
        reached.append(
            page.evaluate(
                """() => {
                  const node = document.activeElement;
                  const name = node.getAttribute('aria-label') || node.textContent.trim() || node.id;
                  return `${node.tagName.toLowerCase()}:${name}`;
                }"""
            )
        )
        if reached[-1] == "textarea:prompt":
            break
    sidebar = reached.index("a:New chat")
    assert reached[sidebar : sidebar + 5] == [
        "a:New chat",
        "input:conversation-search",
        "a:Tides",
        "button:Options for “Tides”",
        "button:Archived",
    ]
    assert reached[-1] == "textarea:prompt"

    # Enter on a conversation's link opens it.
    page.focus(f".conversation-link[href='/c/{conversation.id}/']")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/c/{conversation.id}/")
    expect(page.locator(".conversation-link[aria-current=page]")).to_have_text("Tides")


def test_on_a_narrow_screen_the_sidebar_opens_and_closes_by_keyboard(alice, browser_page):
    page = browser_page
    make_conversation(alice, "Tides")
    page.set_viewport_size({"width": 420, "height": 800})
    log_in(page, "alice", PASSWORD)
    toggle = page.locator("[data-sidebar-toggle]")
    expect(page.locator("[data-search]")).to_be_hidden()  # out of sight and out of the tab order
    toggle.focus()
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(page.locator("[data-search]")).to_be_focused()
    page.keyboard.press("Escape")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(toggle).to_be_focused()
    expect(page.locator("[data-search]")).to_be_hidden()

    page.keyboard.press("Enter")
    page.click(".conversation-link >> text=Tides")  # opening one closes the sidebar
    expect(answer(page)).to_have_text("About Tides 0.")
    expect(toggle).to_have_attribute("aria-expanded", "false")


# --- Each error points where its fix is --------------------------------------------------------------


def test_missing_key_points_to_the_settings_page(bob, fake_openai, browser_page):
    page = browser_page
    log_in(page, "bob", PASSWORD)
    send(page, "Hello?")
    error = page.locator(".error-box")
    error.wait_for()
    assert error.get_attribute("role") == "alert"
    assert "OpenAI API Key not found" in error.inner_text()
    # Nothing was saved, so the conversation the question started goes: still a new chat.
    expect(page.locator(".sidebar-empty")).to_have_text("No conversations yet.")
    assert page.url.endswith("/")
    assert off_thread(lambda: Conversation.objects.filter(owner__username="bob").count()) == 0
    expect(page.locator(".turn-user .turn-body")).to_have_text(["Hello?"])  # the question stays on screen
    link = page.locator("[data-error-link]")
    assert link.inner_text() == "Open settings"
    link.click()
    page.wait_for_url("**/profile/settings/")
    assert fake_openai.requests == []


def test_unknown_model_points_to_the_model_picker(alice, fake_openai, browser_page, settings):
    settings.CHAT_MODELS_FROM_UPSTREAM = False
    settings.CHAT_MODELS = ["gpt-4o-mini", "no-such-model"]
    page = browser_page
    log_in(page, "alice", PASSWORD)
    page.select_option("[data-model]", "no-such-model")
    send(page, "Hello?")

    page.locator(".error-box").wait_for()
    assert page.locator("[data-error-link]").count() == 0  # settings would fix nothing here
    page.click("[data-error-model]")
    picker = page.locator("#model-picker")
    expect(picker).to_be_focused()
    assert picker.get_attribute("aria-invalid") == "true"
    described = picker.get_attribute("aria-describedby")
    assert "Model not available" in page.locator(f"#{described}").inner_text()

    page.select_option("#model-picker", "gpt-4o-mini")
    assert picker.get_attribute("aria-invalid") is None
    fake_openai.scenario = Scenario(pieces=["Fine now."])
    page.click("[data-retry]")
    expect(answer(page)).to_have_text("Fine now.")
    expect(page.locator(".turn-user")).to_have_count(1)  # the question once, not twice


def test_rate_limit_says_when_to_retry(transactional_db, fake_openai, browser_page):
    off_thread(lambda: make_user("carol", api_key="sk-ratelimit-key-1234"))
    page = browser_page
    log_in(page, "carol", PASSWORD)
    send(page, "Hello?")

    retry = page.locator("[data-retry]")
    expect(retry).to_have_text(re.compile(r"^Retry in [67] s$"))
    assert retry.is_disabled()
    assert page.locator("[data-error-link]").count() == 0
    time.sleep(1.2)
    expect(retry).to_have_text(re.compile(r"^Retry in [56] s$"))
    screenshot(page, "chat-rate-limited.png")


# --- Accessibility -----------------------------------------------------------------------------------


def test_the_live_region_announces_the_end_of_an_answer_not_every_piece(alice, fake_openai, browser_page):
    page = browser_page
    fake_openai.scenario = Scenario(pieces=["One ", "two ", "three ", "four."], gap=0.2)
    log_in(page, "alice", PASSWORD)
    page.evaluate(
        """() => {
          window.__announced = [];
          const region = document.querySelector('[data-announce]');
          new MutationObserver(() => { if (region.textContent) window.__announced.push(region.textContent); })
            .observe(region, {childList: true, characterData: true, subtree: true});
        }"""
    )
    live = page.locator("[data-announce]")
    assert live.get_attribute("aria-live") == "polite"
    assert page.locator("[data-transcript]").get_attribute("aria-live") is None  # not re-read per piece
    send(page, "Count to four")
    wait_for_state(page, "done")
    expect(live).to_have_text("Answer complete.")
    assert page.evaluate("window.__announced") == ["Answer complete."]


FOCUS_RING_CONTRAST = """() => {
  const rgb = (color) => color.match(/[\\d.]+/g).slice(0, 4).map(Number);
  const luminance = ([r, g, b]) => {
    const channel = (c) => { c /= 255; return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  };
  const node = document.activeElement;
  const style = getComputedStyle(node);
  let around = node.parentElement;
  while (around && rgb(getComputedStyle(around).backgroundColor)[3] === 0) around = around.parentElement;
  const background = rgb(getComputedStyle(around || document.body).backgroundColor);
  const [a, b] = [luminance(rgb(style.outlineColor)), luminance(background)].sort((x, y) => y - x);
  return {ratio: (a + 0.05) / (b + 0.05), width: parseFloat(style.outlineWidth), style: style.outlineStyle};
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_focus_ring_stands_out_from_its_background(alice, browser_page, scheme):
    page = browser_page
    page.emulate_media(color_scheme=scheme)
    log_in(page, "alice", PASSWORD)
    for selector in ("[data-new-chat]", "[data-show-archived]", ".nav a"):
        page.focus(selector)
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Tab")  # focused from the keyboard: :focus-visible
        ring = page.evaluate(FOCUS_RING_CONTRAST)
        assert ring["style"] == "solid" and ring["width"] >= 2, (selector, ring)
        assert ring["ratio"] >= 3, (selector, ring)  # WCAG 2.1 1.4.11: 3:1 for what shows focus


def test_settings_field_errors_are_described_by_ids_that_exist(alice, browser_page):
    page = browser_page
    log_in(page, "alice", PASSWORD)
    page.goto("/profile/settings/")
    page.fill("#id_api_key", "not-a-key")
    page.fill("#id_organization_id", "bad org")
    page.click("form.form button[type=submit]")
    page.wait_for_selector(".field-errors")
    missing = page.evaluate(
        """() => Array.from(document.querySelectorAll('[aria-describedby]')).flatMap((node) =>
             node.getAttribute('aria-describedby').split(/\\s+/)
               .filter((id) => !document.getElementById(id)).map((id) => `${node.id} -> ${id}`))"""
    )
    assert missing == []
    described = page.get_attribute("#id_api_key", "aria-describedby").split()
    assert "id_api_key_error" in described
    assert "sk-" in page.inner_text("#id_api_key_error")


def chat_with_every_kind_of_message(owner) -> Conversation:
    """A conversation with two versions of its first question, and answers that ended each way."""

    def create() -> Conversation:
        conversation = conversation_create(owner=owner, title="Every kind", model="gpt-4o-mini")
        first = message_add(conversation=conversation, parent=None, role="user", content="Reverse a string?")
        message_add(conversation=conversation, parent=first, role="assistant", content="Use `[::-1]`.")
        edited = message_add(
            conversation=conversation, parent=None, role="user", content="Reverse it in Python?"
        )
        parent = message_add(
            conversation=conversation,
            parent=edited,
            role="assistant",
            content="```python\nprint('abc'[::-1])\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n> [docs](https://docs.python.org/)",
        )
        for status, text in (("stopped", "Partly"), ("interrupted", "Cut"), ("error", "")):
            question = message_add(
                conversation=conversation, parent=parent, role="user", content=f"And {status}?"
            )
            parent = message_add(
                conversation=conversation, parent=question, role="assistant", content=text, status="streaming"
            )
            message_update(
                message=parent, status=status, error_code="openai_error" if status == "error" else ""
            )
        return conversation

    return off_thread(create)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_has_no_serious_accessibility_violation(
    alice, fake_openai, browser_page, settings, scheme
):
    """axe-core (WCAG 2.1 A and AA) on each page of ours; the Swagger UI page (/api/docs/) is not ours."""
    settings.SIGNUP_ENABLED = True
    page = browser_page
    page.emulate_media(color_scheme=scheme)
    found: dict[str, str] = {}

    def check(name: str) -> None:
        violations = axe_violations(page)
        if violations:
            found[name] = describe(violations)

    anonymous = (
        "/accounts/login/",
        "/accounts/signup/",
        "/accounts/password_reset/",
        "/accounts/password_reset/done/",
        "/no/such/page/",
    )
    for path in anonymous:
        page.goto(path)
        check(path)
    page.goto("/accounts/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "wrong password")
    page.click("button[type=submit]")
    page.wait_for_selector(".form-errors")
    check("login with an error")

    log_in(page, "alice", PASSWORD)
    page.wait_for_selector("#chat[data-shown]")
    check("chat, empty")
    conversation = chat_with_every_kind_of_message(alice)
    open_page(page, f"/c/{conversation.id}/")
    page.wait_for_selector(".turn-assistant[data-state=error] .error-box")
    check("chat with messages")
    page.click(".turn-user [aria-label='Edit this question'] >> nth=0")
    page.get_by_role("button", name="Options for “Every kind”").click()
    check("chat with the options open and a question being edited")
    page.goto("/c/00000000-0000-4000-8000-000000000000/")
    check("chat, another user's conversation (404)")

    for path in ("/profile/settings/", "/accounts/password_change/", "/accounts/password_change/done/"):
        page.goto(path)
        check(path)
    if page.goto("/usage/").status == 200:  # the usage page, where it is installed
        check("/usage/")
    page.goto("/profile/settings/")
    page.fill("#id_api_key", "not-a-key")
    page.click("form.form button[type=submit]")
    page.wait_for_selector(".field-errors")
    check("settings with field errors")

    assert not found, "\n\n".join(f"{name} ({scheme}):\n{text}" for name, text in found.items())


# --- Export and import on the settings page ----------------------------------------------------------


def test_export_then_import_into_another_account(alice, bob, browser_page, tmp_path):
    page = browser_page
    make_conversation(alice, "Tides", turns=2)
    log_in(page, "alice", PASSWORD)
    page.goto("/profile/settings/")
    with page.expect_download() as download_info:
        page.click("[data-export]")
    download = download_info.value
    assert download.suggested_filename.startswith("conversations-")
    exported = tmp_path / "export.json"
    download.save_as(exported)
    document = json.loads(exported.read_text())
    assert "version" in document
    assert len(document["conversations"]) == 1

    page.click("button:has-text('Log out')")
    log_in(page, "bob", PASSWORD)
    page.goto("/profile/settings/")
    result = page.locator("[data-import-result]")
    assert result.get_attribute("role") == "status"
    page.set_input_files("[data-import-file]", str(exported))
    page.click("[data-import-submit]")
    expect(result).to_have_text("Imported 1 conversation (4 messages).")

    page.set_input_files("[data-import-file]", str(exported))
    page.click("[data-import-submit]")
    expect(result).to_contain_text("Imported 0 conversations (0 messages). Skipped 1 conversation")
    assert off_thread(lambda: Conversation.objects.filter(owner__username="bob").count()) == 1

    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "an export"}')
    page.set_input_files("[data-import-file]", str(bad))
    page.click("[data-import-submit]")
    expect(result).to_contain_text("Nothing was imported: ")
    assert "transfer-result-error" in result.get_attribute("class")

    page.goto("/")
    expect(page.locator(".conversation-title")).to_have_text(["Tides"])
