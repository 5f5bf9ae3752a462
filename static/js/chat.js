// The chat page. Conversations live on the server (/api/conversations/): the URL names the one shown
// (/c/<id>/), so a reload, back/forward and another device show the same thing. A message is sent
// to the conversation's streaming endpoint, which answers with Server-Sent Events (start, delta,
// done, error); the answer is rendered as it arrives, and the server saves it as it streams, so what
// was on screen is still there after a reload. Stop asks the server to stop (from any tab). Editing a
// question or regenerating an answer adds a branch; "< 2/3 >" moves between them.
// The turns themselves are drawn by turns.js, the sidebar by sidebar.js. No innerHTML anywhere: see
// markdown.js.

import { ApiError, createApi, errorOf, networkError } from "./api.js";
import { createSidebar } from "./sidebar.js";
import { readEvents } from "./sse.js";
import { button, createTurns, el } from "./turns.js";

const root = document.getElementById("chat");
const find = (selector) => root.querySelector(selector);
const ui = {
  title: document.querySelector("[data-title]"),
  scroll: find("[data-scroll]"),
  empty: find("[data-empty]"),
  transcript: find("[data-transcript]"),
  announcer: find("[data-announce]"),
  form: find("[data-composer]"),
  prompt: find("[data-prompt]"),
  send: find("[data-send]"),
  stop: find("[data-stop]"),
  model: find("[data-model]"),
  temperature: find("[data-temperature-input]"),
  temperatureValue: find("[data-temperature-value]"),
  temperatureHint: find("[data-temperature-hint]"),
  newChat: find("[data-new-chat]"),
  sidebarToggle: find("[data-sidebar-toggle]"),
};
const config = {
  listUrl: root.dataset.conversationsUrl,
  pageUrl: root.dataset.pageUrl,
  settingsUrl: root.dataset.settingsUrl,
};
const api = createApi(root.dataset.csrfToken);
const SYSTEM_PROMPT = "You are a friendly, helpful AI assistant.";
const STORAGE = { model: "byok-chat.model", temperature: "byok-chat.temperature" };
const UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
const CONVERSATION_PATH = new RegExp(`/c/(${UUID})/$`, "i");
// How often a page that did not start an answer still being written looks again (a reload mid-answer,
// another device), and for how long at most.
const WATCH_EVERY_MS = 1000;
const WATCH_AT_MOST = 300;
// After Stop, how long the server has to end the stream before the page lets go of it.
const STOP_GRACE_MS = 5000;

const conversationUrl = (id) => `${config.listUrl}${id}/`;
const messagesUrl = (id) => `${conversationUrl(id)}messages/`;
const stopUrl = (id, messageId) => `${messagesUrl(id)}${messageId}/stop/`;
const pageUrlOf = (id) => `${config.pageUrl}c/${id}/`;

const state = {
  id: null, // the conversation shown (null: a new chat, not saved until its first message)
  title: "",
  messages: [], // the branch shown, oldest first, as the API returned it
  view: 0, // bumped on every navigation: an answer for a conversation no longer shown stays off screen
  watch: null, // {messageId, timer}: an answer another page is streaming, looked at again every second
};
// Answers streaming from this page, by conversation id. They go on when the user opens another
// conversation (the server keeps saving them) and show again when the user comes back.
const live = new Map();

// --- The page's parts ---------------------------------------------------------------------------

function nearBottom() {
  const { scrollTop, scrollHeight, clientHeight } = ui.scroll;
  return scrollHeight - scrollTop - clientHeight < 80;
}

function scrollToBottom() {
  ui.scroll.scrollTop = ui.scroll.scrollHeight;
}

let announceTimer = 0;
// The live region says it once: emptied first, so the same words twice are read twice.
function announce(text) {
  ui.announcer.textContent = "";
  window.clearTimeout(announceTimer);
  announceTimer = window.setTimeout(() => {
    ui.announcer.textContent = text;
  }, 50);
}

function setTitle(title) {
  state.title = title || "";
  const shown = state.id ? state.title || "Conversation" : "New chat";
  ui.title.textContent = shown;
  document.title = `${state.id ? shown : "Chat"} · BYOK Chat`;
}

const { userTurn, assistantTurn, setMessage, errorBox, errorActions } = createTurns({
  scroller: { nearBottom, toBottom: scrollToBottom },
  settingsUrl: config.settingsUrl,
  isBusy: () => root.classList.contains("is-busy"),
  onEdit: (message, turn) => startEdit(message, turn),
  onRegenerate: (message) => regenerate(message),
  onSwitch: (targetId, depth, which) => switchBranch(targetId, depth, which),
  onChooseModel: (messageId) => pointAtModelPicker(messageId),
});

function pointAtModelPicker(messageId) {
  ui.model.setAttribute("aria-invalid", "true");
  ui.model.setAttribute("aria-describedby", messageId);
  ui.model.closest(".option").classList.add("needs-attention");
  ui.model.focus();
}

function modelPickerFixed() {
  ui.model.removeAttribute("aria-invalid");
  ui.model.removeAttribute("aria-describedby");
  ui.model.closest(".option").classList.remove("needs-attention");
}

// --- The branch shown ---------------------------------------------------------------------------

function renderBranch(messages) {
  stopWatching();
  const turns = [];
  const handles = new Map();
  messages.forEach((message, depth) => {
    if (message.role === "user") {
      turns.push(userTurn(message, depth));
    } else if (message.role === "assistant") {
      const handle = assistantTurn(message, depth);
      handles.set(message.id, handle);
      turns.push(handle.node);
    }
  });
  ui.transcript.replaceChildren(...turns);
  ui.empty.hidden = turns.length > 0 || state.id !== null;
  return handles;
}

function showConversation(data, { scroll = true, pickModel = false } = {}) {
  state.messages = data.messages || [];
  setTitle(data.title);
  // Opening a conversation selects the model it was last asked with; after that the picker is the user's.
  if (pickModel && data.model && Array.from(ui.model.options).some((option) => option.value === data.model)) {
    ui.model.value = data.model;
    syncTemperature();
  }
  const handles = renderBranch(state.messages);
  const stream = live.get(data.id);
  if (stream && stream.assistantId && handles.has(stream.assistantId)) {
    stream.turn = handles.get(stream.assistantId);
    if (stream.text) stream.turn.show(stream.text);
  } else {
    const streaming = state.messages.find((message) => message.role === "assistant" && message.status === "streaming");
    if (streaming && !stream) watch(streaming.id, handles.get(streaming.id));
  }
  setBusy(live.has(data.id) || state.watch !== null);
  root.dataset.shown = data.id;
  if (scroll) scrollToBottom();
}

// The saved branch again (ids, versions, saved statuses), without redrawing the turns when they are
// the same messages: the notes of how the answer just ended stay as they are.
async function refreshBranch(id) {
  let data;
  try {
    data = await api.json(conversationUrl(id));
  } catch {
    return; // the next navigation loads it again
  }
  if (state.id !== id || live.has(id)) return;
  const turns = Array.from(ui.transcript.children);
  if (turns.some((turn) => !turn.dataset.messageId)) {
    // A question the server refused (nothing was saved) stays on screen with its error until the next one.
    setTitle(data.title);
    return;
  }
  const messages = (data.messages || []).filter((message) => message.role !== "system");
  const same = turns.length === messages.length && turns.every((turn, i) =>
    turn.classList.contains(`turn-${messages[i].role}`) &&
    (!turn.dataset.messageId || turn.dataset.messageId === messages[i].id));
  if (!same || messages.some((message) => message.status === "streaming")) {
    showConversation(data, { scroll: false });
    return;
  }
  state.messages = data.messages;
  setTitle(data.title);
  turns.forEach((turn, i) => setMessage(turn, messages[i]));
}

// An answer being written by another page (or by this one before a reload): look again every second.
function watch(messageId, handle) {
  const id = state.id;
  let rounds = 0;
  const look = async () => {
    rounds += 1;
    let data;
    try {
      data = await api.json(conversationUrl(id));
    } catch {
      data = null;
    }
    if (state.id !== id || !state.watch || state.watch.messageId !== messageId) return;
    const message = data && data.messages.find((candidate) => candidate.id === messageId);
    if (message && message.status === "streaming" && rounds < WATCH_AT_MOST) {
      if (message.content) handle.show(message.content);
      state.watch.timer = window.setTimeout(look, WATCH_EVERY_MS);
      return;
    }
    state.watch = null;
    if (data) {
      showConversation(data, { scroll: nearBottom() });
      if (message) announceEnd(message.status);
    }
    setBusy(live.has(id));
  };
  state.watch = { messageId, timer: window.setTimeout(look, WATCH_EVERY_MS) };
}

function stopWatching() {
  if (state.watch) window.clearTimeout(state.watch.timer);
  state.watch = null;
}

function announceEnd(status) {
  if (status === "complete") announce("Answer complete.");
  else if (status === "stopped") announce("Stopped.");
  else if (status === "interrupted") announce("Answer cut off.");
}

// --- Navigation ---------------------------------------------------------------------------------

function idFromPath(path) {
  const match = CONVERSATION_PATH.exec(path);
  return match ? match[1].toLowerCase() : null;
}

function leaveView() {
  state.view += 1;
  stopWatching();
  for (const stream of live.values()) stream.turn = null; // they go on, off screen
  modelPickerFixed();
}

async function open(id, { push = true } = {}) {
  leaveView();
  const view = state.view;
  state.id = id;
  state.messages = [];
  if (push) window.history.pushState({ id }, "", pageUrlOf(id));
  sidebar.setCurrent(id);
  closeSidebar();
  setTitle("");
  ui.transcript.replaceChildren();
  ui.empty.hidden = true;
  delete root.dataset.shown;
  setBusy(live.has(id));
  let data;
  try {
    data = await api.json(conversationUrl(id));
  } catch (error) {
    if (view !== state.view) return;
    if (error.status === 404) {
      setTitle("Conversation not found");
      ui.transcript.replaceChildren(el("p", "notice", "There is no conversation of yours at this address: it may have been deleted."));
    } else {
      ui.transcript.replaceChildren(errorBox(error, () => open(id, { push: false })));
    }
    root.dataset.shown = id;
    return;
  }
  if (view !== state.view) return;
  showConversation(data, { pickModel: true });
}

function newChat({ push = true } = {}) {
  leaveView();
  state.id = null;
  state.messages = [];
  if (push) window.history.pushState({ id: null }, "", config.pageUrl);
  sidebar.setCurrent(null);
  closeSidebar();
  setTitle("");
  ui.transcript.replaceChildren();
  ui.empty.hidden = false;
  root.dataset.shown = "";
  setBusy(false);
  ui.prompt.focus();
}

function route() {
  const id = idFromPath(window.location.pathname);
  if (id) open(id, { push: false });
  else newChat({ push: false });
}

// --- Asking -------------------------------------------------------------------------------------

function currentModel() {
  return ui.model.value;
}

function acceptsTemperature() {
  const option = ui.model.selectedOptions[0];
  return !option || option.dataset.acceptsTemperature !== "false";
}

// Remove the turns from `depth` on: an edited question or a regenerated answer replaces them on screen
// (the server keeps them, as another version).
function cutTranscriptAt(depth) {
  for (const turn of Array.from(ui.transcript.children)) {
    if (Number(turn.dataset.depth) >= depth) turn.remove();
  }
  state.messages = state.messages.slice(0, depth);
}

// A conversation made for a question the server then refused: nothing is in it.
function discard(id) {
  api.json(conversationUrl(id), { method: "DELETE" }).catch(() => {}).finally(() => sidebar.load());
}

// A question the server refused, and its error, make way for the next one.
function dropUnsaved() {
  while (state.messages.length && !state.messages[state.messages.length - 1].id) state.messages.pop();
  for (const turn of Array.from(ui.transcript.children)) {
    if (!turn.dataset.messageId) turn.remove();
  }
}

// Ask for an answer. content: the question (null: a new answer to parentId, a user message).
// parentId: the message the new one follows (undefined: the last one shown; null: a new first question).
async function ask({ content, parentId }) {
  if (state.id && (live.has(state.id) || state.watch)) return;
  dropUnsaved();
  const view = state.view;
  let id = state.id;
  const created = !id;
  const model = currentModel();
  if (created) {
    setBusy(true);
    try {
      id = (await api.json(config.listUrl, { method: "POST", body: { model, system_prompt: SYSTEM_PROMPT } })).id;
    } catch (error) {
      setBusy(false);
      if (view !== state.view) return;
      ui.empty.hidden = true;
      if (content !== null) ui.transcript.append(userTurn({ role: "user", content }, 0));
      const handle = assistantTurn({ model, status: "streaming" }, 1);
      ui.transcript.append(handle.node);
      handle.fail(error, () => ask({ content, parentId }));
      return;
    }
    if (view !== state.view) {
      discard(id); // the user went elsewhere meanwhile
      return;
    }
    state.id = id;
    window.history.pushState({ id }, "", pageUrlOf(id));
    sidebar.setCurrent(id);
    setTitle("");
    root.dataset.shown = id;
  }

  const body = { model };
  if (content !== null) body.content = content;
  if (acceptsTemperature()) body.temperature = Number(ui.temperature.value);
  const last = state.messages[state.messages.length - 1];
  if (parentId !== undefined) body.parent_id = parentId;
  else if (last && last.id) body.parent_id = last.id;

  // The messages as shown until the server names them (its "start" event), then as it saved them.
  let depth = state.messages.length;
  ui.empty.hidden = true;
  const question = content === null ? null : { role: "user", content };
  let questionNode = null;
  if (question) {
    questionNode = userTurn(question, depth);
    ui.transcript.append(questionNode);
    state.messages.push(question);
    depth += 1;
  }
  const answer = { role: "assistant", model, status: "streaming", content: "" };
  const handle = assistantTurn(answer, depth);
  state.messages.push(answer);
  ui.transcript.append(handle.node);
  scrollToBottom();

  const stream = {
    conversationId: id,
    assistantId: null,
    userId: null,
    text: "",
    turn: handle,
    question,
    questionNode,
    answer,
    controller: new AbortController(),
    stopRequested: false,
    content,
    parentId: body.parent_id,
    created,
  };
  live.set(id, stream);
  setBusy(true);
  ui.transcript.setAttribute("aria-busy", "true");
  const outcome = await run(stream, body);
  live.delete(id);
  ui.transcript.removeAttribute("aria-busy");
  finish(stream, outcome);
}

// Read the answer's events; returns how it ended.
async function run(stream, body) {
  let response;
  try {
    response = await api.request(messagesUrl(stream.conversationId), {
      method: "POST",
      body,
      signal: stream.controller.signal,
      headers: { Accept: "text/event-stream" },
    });
  } catch (error) {
    return error.name === "AbortError" ? { kind: "aborted" } : { kind: "failed", error: networkError() };
  }
  if (!response.ok) return { kind: "failed", error: await errorOf(response) };

  let outcome = null;
  try {
    for await (const event of readEvents(response.body)) {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        continue;
      }
      if (data.type === "start") {
        stream.assistantId = idOf(data.assistant_message);
        stream.userId = idOf(data.user_message);
        if (typeof data.assistant_message === "object") Object.assign(stream.answer, data.assistant_message);
        if (stream.question && typeof data.user_message === "object") Object.assign(stream.question, data.user_message);
        if (stream.turn) {
          stream.turn.node.dataset.messageId = stream.assistantId;
          if (stream.questionNode) setMessage(stream.questionNode, stream.question);
          if (data.conversation && data.conversation.title) setTitle(data.conversation.title);
        }
        if (stream.stopRequested) requestStop(stream);
        sidebar.load(); // the conversation moves to the top (and, on its first question, gets a title)
      } else if (data.type === "delta" && typeof data.text === "string") {
        stream.text += data.text;
        if (stream.turn) stream.turn.show(stream.text);
      } else if (data.type === "done") {
        outcome = { kind: "done", message: data.message || {} };
      } else if (data.type === "error") {
        outcome = {
          kind: "error",
          message: data.assistant_message || null,
          error: new ApiError({ message: data.message || "The answer failed.", code: data.code, settingsUrl: data.settings_url }),
        };
      }
    }
  } catch (error) {
    if (!outcome) outcome = error.name === "AbortError" ? { kind: "aborted" } : { kind: "broken" };
  }
  return outcome || { kind: "broken" };
}

function idOf(value) {
  return value && typeof value === "object" ? value.id : value || null;
}

// Show how the answer ended (if its conversation is still on screen), then the saved branch.
function finish(stream, outcome) {
  window.clearTimeout(stream.stopTimer);
  const id = stream.conversationId;
  const handle = stream.turn;
  let shown = state.id === id && handle !== null;
  let retry = () => retryAfter(stream);
  if (outcome.kind === "failed" && stream.created) {
    // Refused before anything was saved: the conversation this question started is empty, so it
    // goes, and the page is a new chat again (with the question and its error on screen).
    discard(id);
    if (shown) {
      state.id = null;
      window.history.replaceState({ id: null }, "", config.pageUrl);
      sidebar.setCurrent(null);
      setTitle("");
      root.dataset.shown = "";
      retry = () => {
        if (state.id === null) ask({ content: stream.content, parentId: undefined });
      };
    }
    shown = shown && state.id === null;
  }
  if (outcome.message && typeof outcome.message === "object") Object.assign(stream.answer, outcome.message);
  if (shown) {
    if (outcome.kind === "done") {
      const saved = outcome.message;
      if (typeof saved.content === "string" && saved.content.length >= stream.text.length) {
        stream.text = saved.content;
        if (saved.content) handle.show(saved.content);
      }
      const status = saved.status || "complete";
      if (status === "stopped") {
        handle.end("stopped", stream.text ? "Stopped." : "Stopped before the answer began.");
      } else if (status === "interrupted") {
        handle.end("truncated", "Answer cut off: it broke off before it was complete.", [button("Retry", retry)]);
      } else {
        handle.end("done");
      }
      announceEnd(status);
    } else if (outcome.kind === "aborted") {
      handle.end("stopped", stream.text ? "Stopped." : "Stopped before the answer began.");
      announce("Stopped.");
    } else if (outcome.kind === "failed" || (outcome.kind === "error" && !stream.text)) {
      handle.fail(outcome.error, retry);
    } else {
      // Cut off mid-answer (an error event, or the connection broke): what arrived stays on screen.
      const reason = outcome.kind === "error"
        ? outcome.error.message
        : "the connection broke before the answer was complete.";
      const box = el("span", "turn-note-actions");
      const actions = outcome.kind === "error" ? errorActions(outcome.error, retry, null) : [button("Retry", retry)];
      box.append(...actions);
      handle.end("truncated", `Answer cut off: ${reason}`, [box]);
      announce(`Answer cut off: ${reason}`);
    }
    setBusy(false);
    if (stream.answer.id) setMessage(handle.node, stream.answer);
  }
  sidebar.load();
  if (state.id === id) refreshBranch(id);
  // A title is written from the first answer, a moment after it: show it when it is there.
  window.setTimeout(() => sidebar.load(), 4000);
}

// Try again after a failed or cut-off answer: a new answer to the question if the server kept it,
// else the question again.
async function retryAfter(stream) {
  const id = stream.conversationId;
  if (state.id !== id || live.has(id)) return;
  let data;
  try {
    data = await api.json(conversationUrl(id));
  } catch (error) {
    announce(`Could not retry: ${error.message}`);
    return;
  }
  showConversation(data);
  const messages = state.messages;
  const last = messages[messages.length - 1];
  // The question to answer again: the one saved for this answer, or (when the error came before the
  // server said) a last question with the same words; a regenerated answer's question is its parent.
  let question = null;
  if (stream.userId) question = messages.find((message) => message.id === stream.userId) || null;
  else if (stream.content === null) question = messages.find((message) => message.id === stream.parentId) || null;
  else if (last && last.role === "user" && last.content === stream.content) question = last;
  if (question) {
    cutTranscriptAt(messages.indexOf(question) + 1);
    ask({ content: null, parentId: question.id });
  } else if (stream.content !== null) {
    ask({ content: stream.content, parentId: stream.parentId });
  }
}

function regenerate(message) {
  if (live.has(state.id) || state.watch) return;
  const depth = state.messages.findIndex((candidate) => candidate.id === message.id);
  if (depth === -1 || !message.parent_id) return;
  cutTranscriptAt(depth);
  ask({ content: null, parentId: message.parent_id });
}

function startEdit(message, turn) {
  if (live.has(state.id) || state.watch) return;
  const form = el("form", "edit-form");
  const fieldId = `edit-${message.id}`;
  const label = el("label", "visually-hidden", "Edit your question");
  label.htmlFor = fieldId;
  const area = el("textarea");
  area.id = fieldId;
  area.value = message.content;
  area.rows = Math.min(10, message.content.split("\n").length + 1);
  const actions = el("div", "edit-actions");
  const cancel = button("Cancel", () => endEdit(false));
  const save = el("button", "btn btn-small btn-primary", "Send");
  save.type = "submit";
  actions.append(cancel, save);
  form.append(label, area, actions);
  const before = Array.from(turn.children);
  turn.replaceChildren(before[0], form);
  turn.classList.add("is-editing");
  area.focus();
  area.setSelectionRange(area.value.length, area.value.length);

  function endEdit(send) {
    const text = area.value.trim();
    if (send && !text) return;
    if (send && text !== message.content) {
      const depth = Number(turn.dataset.depth);
      cutTranscriptAt(depth);
      ask({ content: text, parentId: message.parent_id || null });
      return;
    }
    turn.classList.remove("is-editing");
    turn.replaceChildren(...before);
    const edit = turn.querySelector(".turn-actions button:last-child");
    if (edit) edit.focus();
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    endEdit(true);
  });
  area.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      endEdit(false);
    } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      endEdit(true);
    }
  });
}

// Show another version: the server makes it the current branch (down to its newest answer), then the
// page shows that branch, keeping the keyboard focus on the arrows that were used.
async function switchBranch(targetId, depth, which) {
  const id = state.id;
  if (!id || live.has(id)) return;
  const view = state.view;
  let data;
  try {
    await api.json(conversationUrl(id), { method: "PATCH", body: { current_leaf_id: targetId } });
    data = await api.json(conversationUrl(id));
  } catch (error) {
    announce(`Could not show that version: ${error.message}`);
    return;
  }
  if (view !== state.view) return;
  showConversation(data, { scroll: false });
  const turn = ui.transcript.querySelector(`[data-depth="${depth}"]`);
  if (!turn) return;
  const arrows = [turn.querySelector(`[data-branch-${which}]`), turn.querySelector(`[data-branch-${which === "next" ? "prev" : "next"}]`)];
  const target = arrows.find((arrow) => arrow && !arrow.disabled);
  if (target) target.focus();
  const count = turn.querySelector("[data-branch-count] .visually-hidden");
  if (count) announce(`${count.textContent}.`);
}

function send() {
  const text = ui.prompt.value.trim();
  if (!text || (state.id && (live.has(state.id) || state.watch))) return;
  ui.prompt.value = "";
  autosize();
  ask({ content: text, parentId: undefined });
}

// Stop: the server stops the answer (and the upstream request), keeps what was written, and ends the
// stream with a "done" event saying "stopped". Should it not, the page lets go after a grace period.
async function requestStop(stream) {
  stream.stopRequested = true;
  window.clearTimeout(stream.stopTimer);
  stream.stopTimer = window.setTimeout(() => stream.controller.abort(), STOP_GRACE_MS);
  if (!stream.assistantId) return; // asked again once "start" names the answer
  try {
    await api.json(stopUrl(stream.conversationId, stream.assistantId), { method: "POST" });
  } catch {
    stream.controller.abort();
  }
}

async function stopWatched() {
  if (!state.watch || !state.id) return;
  try {
    await api.json(stopUrl(state.id, state.watch.messageId), { method: "POST" });
  } catch (error) {
    announce(`Could not stop: ${error.message}`);
  }
}

function setBusy(busy) {
  const wasBusy = root.classList.contains("is-busy");
  ui.send.hidden = busy;
  ui.stop.hidden = !busy;
  root.classList.toggle("is-busy", busy);
  if (busy === wasBusy) return;
  // Versions, edit and regenerate wait for the answer in progress. (The arrows' own ends stay disabled.)
  for (const turn of ui.transcript.children) {
    const message = state.messages[Number(turn.dataset.depth)];
    if (message && message.id) setMessage(turn, message);
  }
  if (!busy && wasBusy && !root.contains(document.activeElement)) ui.prompt.focus();
  else if (!busy && wasBusy && document.activeElement === ui.stop) ui.prompt.focus();
}

// --- Controls -----------------------------------------------------------------------------------

function autosize() {
  ui.prompt.style.height = "auto";
  ui.prompt.style.height = `${Math.min(ui.prompt.scrollHeight, 240)}px`;
}

function syncTemperature() {
  const accepts = acceptsTemperature();
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

function closeSidebar() {
  root.classList.remove("sidebar-open");
  ui.sidebarToggle.setAttribute("aria-expanded", "false");
}

const sidebar = createSidebar({
  root: find("[data-sidebar]"),
  api,
  listUrl: config.listUrl,
  conversationUrl,
  pageUrlOf,
  onOpen: (id) => open(id),
  onDeleted: (id) => {
    if (state.id === id) newChat();
  },
  onRenamed: (id, title) => {
    if (state.id === id) setTitle(title);
  },
});

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
ui.stop.addEventListener("click", () => {
  const stream = state.id && live.get(state.id);
  if (stream) requestStop(stream);
  else stopWatched();
});
ui.model.addEventListener("change", () => {
  savePreference(STORAGE.model, ui.model.value);
  modelPickerFixed();
  syncTemperature();
});
ui.temperature.addEventListener("input", () => {
  savePreference(STORAGE.temperature, ui.temperature.value);
  syncTemperature();
});
ui.newChat.addEventListener("click", (event) => {
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  newChat();
});
ui.sidebarToggle.addEventListener("click", () => {
  const open = !root.classList.contains("sidebar-open");
  root.classList.toggle("sidebar-open", open);
  ui.sidebarToggle.setAttribute("aria-expanded", String(open));
  if (open) find("[data-search]").focus();
});
root.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && root.classList.contains("sidebar-open")) {
    closeSidebar();
    ui.sidebarToggle.focus();
  }
});
window.addEventListener("popstate", route);

restorePreferences();
syncTemperature();
sidebar.setCurrent(root.dataset.conversationId || null);
sidebar.load();
route();
root.dataset.ready = "true";
ui.prompt.focus();
