// Settings page, "Conversations": import a file through POST /api/conversations/import/ (multipart,
// with the CSRF token) and say what came of it: how many were imported and skipped, or the 400's
// message. Export is a plain download link.

import { errorOf, networkError } from "./api.js";

const section = document.querySelector("[data-transfer]");
const form = section.querySelector("[data-import]");
const file = form.querySelector("[data-import-file]");
const submit = form.querySelector("[data-import-submit]");
const result = form.querySelector("[data-import-result]");

function counted(count, one, many) {
  return `${count} ${count === 1 ? one : many}`;
}

function describe(data) {
  const { imported, skipped } = data;
  const parts = [
    `Imported ${counted(imported.conversations, "conversation", "conversations")} ` +
      `(${counted(imported.messages, "message", "messages")}).`,
  ];
  if (skipped.conversations || skipped.messages) {
    parts.push(
      `Skipped ${counted(skipped.conversations, "conversation", "conversations")} and ` +
        `${counted(skipped.messages, "message", "messages")} already here or with nothing to keep.`,
    );
  }
  return parts.join(" ");
}

function show(text, kind) {
  result.textContent = text;
  result.className = `transfer-result transfer-result-${kind}`;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!file.files.length) {
    show("Choose a file to import first.", "error");
    file.focus();
    return;
  }
  const body = new FormData(form);
  body.delete("csrfmiddlewaretoken");
  submit.disabled = true;
  show("Importing…", "busy");
  try {
    let response;
    try {
      response = await fetch(form.action, {
        method: "POST",
        body,
        headers: { "X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]").value, Accept: "application/json" },
        credentials: "same-origin",
      });
    } catch {
      throw networkError();
    }
    if (!response.ok) throw await errorOf(response);
    show(describe(await response.json()), "ok");
    form.reset();
  } catch (error) {
    show(`Nothing was imported: ${error.message}`, "error");
  } finally {
    submit.disabled = false;
  }
});
