// The chat page: keeps the conversation in the page, posts chatbot-ui's body to /api/chat/openai
// and renders the answer as it streams in. No innerHTML anywhere: see markdown.js.

import { renderMarkdown } from "./markdown.js";

const root = document.getElementById("chat");
const find = (selector) => root.querySelector(selector);
const ui = {
  scroll: find("[data-scroll]"),
  empty: find("[data-empty]"),
  transcript: find("[data-transcript]"),
  form: find("[data-composer]"),
  prompt: find("[data-prompt]"),
  send: find("[data-send]"),
  stop: find("[data-stop]"),
  model: find("[data-model]"),
  temperature: find("[data-temperature-input]"),
  temperatureValue: find("[data-temperature-value]"),
  temperatureHint: find("[data-temperature-hint]"),
  newChat: find("[data-new-chat]"),
};
const config = {
  apiUrl: root.dataset.apiUrl,
  settingsUrl: root.dataset.settingsUrl,
  csrfToken: root.dataset.csrfToken,
};
const SYSTEM_PROMPT = "You are a friendly, helpful AI assistant.";
const STORAGE = { model: "byok-chat.model", temperature: "byok-chat.temperature" };

const history = []; // {role, content}: what the next request sends after the system prompt
let controller = null; // the AbortController of the answer in progress
let conversation = 0; // bumped by "New chat", so an answer still ending cannot land in the new one

// --- Small DOM helpers --------------------------------------------------------------------------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function nearBottom() {
  const { scrollTop, scrollHeight, clientHeight } = ui.scroll;
  return scrollHeight - scrollTop - clientHeight < 80;
}

function scrollToBottom() {
  ui.scroll.scrollTop = ui.scroll.scrollHeight;
}

function append(node) {
  ui.empty.hidden = true;
  ui.transcript.append(node);
  scrollToBottom();
}

// --- Turns in the transcript --------------------------------------------------------------------

function userTurn(text) {
  const turn = el("article", "turn turn-user");
  turn.append(el("div", "turn-body", text));
  append(turn);
}

function assistantTurn(model) {
  const turn = el("article", "turn turn-assistant");
  turn.dataset.state = "waiting";
  const avatar = el("div", "turn-avatar");
  avatar.setAttribute("aria-hidden", "true");
  const main = el("div", "turn-main");
  const meta = el("div", "turn-meta", model);
  const body = el("div", "turn-body markdown");
  body.dataset.answer = "";
  main.append(meta, body);
  turn.append(avatar, main);
  append(turn);

  return {
    node: turn,
    show(text) {
      const follow = nearBottom();
      turn.dataset.state = "streaming";
      body.replaceChildren(renderMarkdown(text));
      if (follow) scrollToBottom();
    },
    end(state, note, action) {
      turn.dataset.state = state;
      if (note) {
        const p = el("p", `turn-note turn-note-${state}`, note);
        if (action) p.append(" ", action);
        main.append(p);
      }
    },
    fail(error, retry) {
      turn.dataset.state = "error";
      body.remove();
      main.append(errorBox(error, retry));
      scrollToBottom();
    },
  };
}

function errorBox(error, retry) {
  const box = el("div", "error-box");
  box.setAttribute("role", "alert");
  box.append(el("p", "error-message", error.message));
  const actions = el("p", "error-actions");
  if (error.settingsUrl) {
    const link = el("a", "btn btn-small btn-primary", error.code === "not_authenticated" ? "Log in again" : "Open settings");
    link.href = error.settingsUrl;
    link.dataset.errorLink = "";
    actions.append(link);
  }
  actions.append(button("Retry", retry));
  box.append(actions);
  return box;
}

function button(label, onClick) {
  const node = el("button", "btn btn-small btn-quiet", label);
  node.type = "button";
  node.addEventListener("click", onClick);
  return node;
}

// --- Talking to the API -------------------------------------------------------------------------

function chatSettings() {
  return {
    model: ui.model.value,
    prompt: SYSTEM_PROMPT,
    temperature: Number(ui.temperature.value),
    contextLength: 4096,
    includeProfileContext: false,
    includeWorkspaceInstructions: false,
    embeddingsProvider: "openai",
  };
}

// Only a link back to this site is followed; anything else falls back to the page's own URL.
function sameOriginUrl(url) {
  try {
    const parsed = new URL(url, window.location.href);
    return parsed.origin === window.location.origin ? parsed.href : config.settingsUrl;
  } catch {
    return config.settingsUrl;
  }
}

async function errorOf(response) {
  let data = null;
  try {
    data = await response.json();
  } catch {
    // not JSON (a proxy's error page, say): describe the status instead
  }
  const message = data && typeof data.message === "string" && data.message
    ? data.message
    : `The server answered with an error (HTTP ${response.status}). Please try again.`;
  return { message, code: data && data.code, settingsUrl: sameOriginUrl(data && data.settings_url) };
}

async function answer() {
  const settings = chatSettings();
  const current = conversation;
  const turn = assistantTurn(settings.model);
  const body = { chatSettings: settings, messages: [{ role: "system", content: SYSTEM_PROMPT }, ...history] };
  controller = new AbortController();
  setBusy(true);
  let text = "";
  let started = false;
  try {
    // No Content-Type, like chatbot-ui's browser; the session cookie and the CSRF header authenticate.
    const response = await fetch(config.apiUrl, {
      method: "POST",
      headers: { "X-CSRFToken": config.csrfToken },
      body: JSON.stringify(body),
      credentials: "same-origin",
      signal: controller.signal,
    });
    if (!response.ok) {
      turn.fail(await errorOf(response), () => retry(turn.node));
      return;
    }
    started = true;
    const reader = response.body.getReader();
    const decoder = new TextDecoder("utf-8");
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      turn.show(text);
    }
    text += decoder.decode();
    turn.show(text);
    turn.end("done");
  } catch (error) {
    if (error.name === "AbortError") {
      turn.end("stopped", text ? "Stopped." : "Stopped before the answer began.");
    } else if (started) {
      // The server cuts the response off when the upstream fails mid-answer.
      turn.end("truncated", "Answer cut off: the connection broke before the answer was complete.",
        button("Retry", () => retry(turn.node)));
    } else {
      turn.fail({ message: "Could not reach the server. Check your connection and try again.",
                  settingsUrl: null }, () => retry(turn.node));
    }
  } finally {
    controller = null;
    setBusy(false);
  }
  if (text && current === conversation) history.push({ role: "assistant", content: text });
}

// Ask again for the last user message: drop the failed (or cut off) answer first.
function retry(turnNode) {
  if (controller) return;
  if (turnNode !== ui.transcript.lastElementChild) return;
  if (history.length && history[history.length - 1].role === "assistant") history.pop();
  turnNode.remove();
  answer();
}

function send() {
  const text = ui.prompt.value.trim();
  if (!text || controller) return;
  ui.prompt.value = "";
  autosize();
  history.push({ role: "user", content: text });
  userTurn(text);
  answer();
}

function setBusy(busy) {
  ui.send.hidden = busy;
  ui.stop.hidden = !busy;
  root.classList.toggle("is-busy", busy);
  if (!busy) ui.prompt.focus();
}

// --- Controls -----------------------------------------------------------------------------------

function autosize() {
  ui.prompt.style.height = "auto";
  ui.prompt.style.height = `${Math.min(ui.prompt.scrollHeight, 240)}px`;
}

function syncTemperature() {
  const option = ui.model.selectedOptions[0];
  const accepts = !option || option.dataset.acceptsTemperature !== "false";
  ui.temperature.disabled = !accepts;
  ui.temperatureHint.hidden = accepts;
  ui.temperatureValue.textContent = Number(ui.temperature.value).toFixed(1);
}

function restorePreferences() {
  try {
    const model = localStorage.getItem(STORAGE.model);
    if (model && Array.from(ui.model.options).some((option) => option.value === model)) ui.model.value = model;
    const temperature = localStorage.getItem(STORAGE.temperature);
    if (temperature !== null && !Number.isNaN(Number(temperature))) ui.temperature.value = temperature;
  } catch {
    // storage unavailable (private mode): keep the defaults
  }
}

function savePreference(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // ignore
  }
}

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  send();
});
ui.prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    send();
  }
});
ui.prompt.addEventListener("input", autosize);
ui.stop.addEventListener("click", () => controller && controller.abort());
ui.model.addEventListener("change", () => {
  savePreference(STORAGE.model, ui.model.value);
  syncTemperature();
});
ui.temperature.addEventListener("input", () => {
  savePreference(STORAGE.temperature, ui.temperature.value);
  syncTemperature();
});
ui.newChat.addEventListener("click", () => {
  if (controller) controller.abort();
  conversation += 1;
  history.length = 0;
  ui.transcript.replaceChildren();
  ui.empty.hidden = false;
  ui.prompt.focus();
});

restorePreferences();
syncTemperature();
root.dataset.ready = "true";
ui.prompt.focus();
