// The chat page's transcript: a turn for each message (a question, or an answer that can be written
// into as it streams), its actions (versions "< 2/3 >", Edit, Regenerate) and error boxes that point
// where each error's fix is. Built from DOM nodes only: no innerHTML (see markdown.js).

import { ApiError, sameOriginUrl } from "./api.js";
import { renderMarkdown } from "./markdown.js";

// Errors whose fix is on the settings page (the key, its organization, its quota, its server).
const SETTINGS_CODES = new Set([
  "openai_permission_denied", "openai_quota_exceeded", "openai_base_url_refused", "not_authenticated",
]);
const RATE_LIMIT_CODES = new Set(["openai_rate_limited", "too_many_streams"]);

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function button(label, onClick, { className = "btn btn-small btn-quiet", ariaLabel } = {}) {
  const node = el("button", className, label);
  node.type = "button";
  if (ariaLabel) node.setAttribute("aria-label", ariaLabel);
  node.addEventListener("click", onClick);
  return node;
}

// scroller: {nearBottom(), toBottom()}; the on* callbacks do what the turns' buttons ask for.
export function createTurns({ scroller, settingsUrl, isBusy, onEdit, onRegenerate, onSwitch, onChooseModel }) {
  function userTurn(message, depth) {
    const turn = el("article", "turn turn-user");
    turn.dataset.depth = String(depth);
    turn.append(el("h2", "visually-hidden", "You said:"), el("div", "turn-body", message.content));
    turn.append(el("div", "turn-actions"));
    setMessage(turn, message);
    return turn;
  }

  // An assistant turn and the handle that writes into it as the answer streams.
  function assistantTurn(message, depth) {
    const turn = el("article", "turn turn-assistant");
    turn.dataset.depth = String(depth);
    turn.dataset.state = "waiting";
    const avatar = el("div", "turn-avatar");
    avatar.setAttribute("aria-hidden", "true");
    const main = el("div", "turn-main");
    const meta = el("div", "turn-meta", message.model || "");
    const body = el("div", "turn-body markdown");
    body.dataset.answer = "";
    main.append(el("h2", "visually-hidden", "Answer:"), meta, body);
    turn.append(avatar, main, el("div", "turn-actions"));
    let notes = [];

    const handle = {
      node: turn,
      show(text) {
        const follow = scroller.nearBottom();
        if (turn.dataset.state === "waiting") turn.dataset.state = "streaming";
        body.replaceChildren(renderMarkdown(text));
        if (follow) scroller.toBottom();
      },
      end(endState, note, actions = []) {
        turn.dataset.state = endState;
        for (const old of notes) old.remove();
        notes = [];
        if (note) {
          const p = el("p", `turn-note turn-note-${endState}`, note);
          if (actions.length) p.append(" ", ...actions);
          main.append(p);
          notes.push(p);
        }
      },
      fail(error, retry) {
        turn.dataset.state = "error";
        for (const old of notes) old.remove();
        const box = errorBox(error, retry);
        main.append(box);
        notes = [box];
        scroller.toBottom();
      },
    };
    if (message.content) handle.show(message.content);
    setMessage(turn, message);
    showSavedStatus(handle, message);
    return handle;
  }

  // How a saved answer ended, as its turn shows it.
  function showSavedStatus(handle, message) {
    switch (message.status) {
      case "streaming":
        handle.node.dataset.state = message.content ? "streaming" : "waiting";
        break;
      case "stopped":
        handle.end("stopped", message.content ? "Stopped." : "Stopped before the answer began.");
        break;
      case "interrupted":
        handle.end("truncated", "Answer cut off: it broke off before it was complete.");
        break;
      case "error":
        // Its Regenerate button is the retry; the box points to the fix when the code names one.
        handle.fail(new ApiError({ message: "No answer: the request failed before the answer began.",
                                   code: message.error_code }), null);
        break;
      default:
        handle.end("done");
    }
  }

  // The message a turn shows (once saved: its id, its versions and what can be done with it).
  function setMessage(turn, message) {
    if (message.id) turn.dataset.messageId = message.id;
    const actions = turn.querySelector(":scope > .turn-actions");
    if (!actions) return; // being edited: its actions come back with it
    actions.replaceChildren();
    if (!message.id) return;
    const nav = branchNav(message, Number(turn.dataset.depth));
    if (nav) actions.append(nav);
    if (message.role === "user") {
      actions.append(button("Edit", () => onEdit(message, turn), { ariaLabel: "Edit this question" }));
    } else if (message.status !== "streaming") {
      const again = button("Regenerate", () => onRegenerate(message), { ariaLabel: "Regenerate this answer" });
      again.dataset.regenerate = "";
      actions.append(again);
    }
    if (isBusy()) {
      for (const node of actions.querySelectorAll("button")) node.disabled = true;
    }
  }

  // "< 2/3 >": the versions of a message (its siblings: the same parent's children, oldest first).
  function branchNav(message, depth) {
    const ids = message.sibling_ids || [];
    const index = ids.indexOf(message.id);
    if (ids.length < 2 || index === -1) return null;
    const what = message.role === "user" ? "question" : "answer";
    const nav = el("div", "branch-nav");
    nav.setAttribute("role", "group");
    nav.setAttribute("aria-label", `Versions of this ${what}`);
    const prev = button("‹", () => onSwitch(ids[index - 1], depth, "prev"), {
      className: "branch-button", ariaLabel: `Previous version of this ${what}`,
    });
    prev.dataset.branchPrev = "";
    prev.disabled = index === 0;
    const next = button("›", () => onSwitch(ids[index + 1], depth, "next"), {
      className: "branch-button", ariaLabel: `Next version of this ${what}`,
    });
    next.dataset.branchNext = "";
    next.disabled = index === ids.length - 1;
    const count = el("span", "branch-count");
    const seen = el("span", "", `${index + 1}/${ids.length}`);
    seen.setAttribute("aria-hidden", "true");
    count.dataset.branchCount = "";
    count.append(seen, el("span", "visually-hidden", `Version ${index + 1} of ${ids.length}`));
    nav.append(prev, count, next);
    return nav;
  }

  function errorBox(error, retry) {
    const box = el("div", "error-box");
    box.setAttribute("role", "alert");
    const message = el("p", "error-message", error.message);
    message.id = `error-${Date.now()}-${Math.floor(Math.random() * 1e6)}`;
    box.append(message);
    const actions = el("p", "error-actions");
    actions.append(...errorActions(error, retry, message.id));
    box.append(actions);
    return box;
  }

  // Each error points where its fix is: the settings page for the key, the model picker for a model
  // the key cannot use, a wait for a rate limit; and Retry.
  function errorActions(error, retry, messageId) {
    const code = error.code || "";
    const actions = [];
    if (code.startsWith("openai_api_key_") || SETTINGS_CODES.has(code)) {
      const label = code === "not_authenticated" ? "Log in again" : "Open settings";
      const link = el("a", "btn btn-small btn-primary", label);
      link.href = sameOriginUrl(error.settingsUrl, settingsUrl);
      link.dataset.errorLink = "";
      actions.push(link);
    } else if (code === "openai_model_not_found") {
      const choose = button("Choose another model", () => onChooseModel(messageId), {
        className: "btn btn-small btn-primary",
      });
      choose.dataset.errorModel = "";
      actions.push(choose);
    }
    if (RATE_LIMIT_CODES.has(code) && error.retryAfter) {
      actions.push(countdownRetry(error.retryAfter, retry));
    } else if (retry) {
      const again = button("Retry", retry);
      again.dataset.retry = "";
      actions.push(again);
    }
    return actions;
  }

  // "Retry in N s", counting down; a button once the wait is over.
  function countdownRetry(seconds, retry) {
    const node = button(`Retry in ${seconds} s`, retry);
    node.dataset.retry = "";
    node.disabled = true;
    let left = seconds;
    const timer = window.setInterval(() => {
      left -= 1;
      if (!node.isConnected || left <= 0) {
        window.clearInterval(timer);
        node.textContent = "Retry";
        node.disabled = false;
        return;
      }
      node.textContent = `Retry in ${left} s`;
    }, 1000);
    return node;
  }

  return { userTurn, assistantTurn, setMessage, errorBox, errorActions };
}
