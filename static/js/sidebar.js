// The chat page's sidebar: the user's conversations, pinned first, then the most recently active;
// search; rename, pin, archive and delete (with a confirmation). Every control is a real link or
// button, named for screen readers; the open conversation's link has aria-current="page".

const SEARCH_DELAY_MS = 250;

export function createSidebar({ root, api, listUrl, conversationUrl, pageUrlOf, onOpen, onDeleted, onRenamed }) {
  const find = (selector) => root.querySelector(selector);
  const ui = {
    lists: find("[data-lists]"),
    status: find("[data-list-status]"),
    search: find("[data-search]"),
    searchForm: find("[data-search-form]"),
    archived: find("[data-show-archived]"),
  };
  let items = []; // the conversations shown, as the API lists them
  let nextUrl = null;
  let currentId = null;
  let showArchived = false;
  let searchTimer = 0;
  let loading = 0; // bumped per load, so a slow answer cannot overwrite a newer one
  let openMenu = null;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function titleOf(conversation) {
    return conversation.title || "New chat";
  }

  function say(text) {
    ui.status.textContent = text;
  }

  async function load({ more = false } = {}) {
    const ticket = ++loading;
    let url = nextUrl;
    if (!more) {
      const params = new URLSearchParams();
      const search = ui.search.value.trim();
      if (search) params.set("search", search);
      if (showArchived) params.set("archived", "true");
      url = params.size ? `${listUrl}?${params}` : listUrl;
    }
    root.setAttribute("aria-busy", "true");
    try {
      const page = await api.json(url);
      if (ticket !== loading) return;
      items = more ? items.concat(page.results) : page.results;
      nextUrl = page.next;
      render();
      const search = ui.search.value.trim();
      if (search) {
        say(page.count === 0 ? "No conversations match." : `${page.count} conversation${page.count === 1 ? "" : "s"} found.`);
      } else if (!more) {
        say("");
      }
    } catch (error) {
      if (ticket === loading) say(`Could not load the conversations: ${error.message}`);
    } finally {
      if (ticket === loading) root.removeAttribute("aria-busy");
    }
  }

  function render() {
    const focused = document.activeElement && root.contains(document.activeElement)
      ? document.activeElement.dataset.focusKey : null;
    closeMenu();
    const groups = [];
    if (showArchived) {
      groups.push(["Archived", items]);
    } else if (ui.search.value.trim()) {
      groups.push(["Search results", items]);
    } else {
      const pinned = items.filter((item) => item.pinned);
      const recent = items.filter((item) => !item.pinned);
      if (pinned.length) groups.push(["Pinned", pinned]);
      if (recent.length) groups.push(["Recent", recent]);
    }
    const nodes = [];
    groups.forEach(([label, conversations], index) => {
      const id = `sidebar-group-${index}`;
      const heading = el("h2", "sidebar-heading", label);
      heading.id = id;
      const list = el("ul", "conversation-list");
      list.setAttribute("aria-labelledby", id);
      for (const conversation of conversations) list.append(itemNode(conversation));
      nodes.push(heading, list);
    });
    if (!items.length && !ui.search.value.trim()) {
      nodes.push(el("p", "sidebar-empty", showArchived ? "No archived conversations." : "No conversations yet."));
    }
    if (nextUrl) {
      const more = el("button", "btn btn-quiet btn-small sidebar-more", "Show more");
      more.type = "button";
      more.dataset.focusKey = "more";
      more.addEventListener("click", () => load({ more: true }));
      nodes.push(more);
    }
    ui.lists.replaceChildren(...nodes);
    if (focused) {
      const again = ui.lists.querySelector(`[data-focus-key="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
  }

  function itemNode(conversation) {
    const title = titleOf(conversation);
    const item = el("li", "conversation-item");
    item.dataset.conversationId = conversation.id;
    const link = el("a", "conversation-link");
    link.href = pageUrlOf(conversation.id);
    link.dataset.focusKey = `link-${conversation.id}`;
    link.append(el("span", "conversation-title", title));
    if (conversation.id === currentId) link.setAttribute("aria-current", "page");
    link.addEventListener("click", (event) => {
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      event.preventDefault();
      onOpen(conversation.id);
    });

    const menuId = `conversation-menu-${conversation.id}`;
    const more = el("button", "conversation-more");
    more.type = "button";
    more.dataset.focusKey = `more-${conversation.id}`;
    more.setAttribute("aria-label", `Options for “${title}”`);
    more.setAttribute("aria-expanded", "false");
    more.setAttribute("aria-controls", menuId);
    const dots = el("span", "icon icon-dots");
    dots.setAttribute("aria-hidden", "true");
    more.append(dots);

    const menu = el("div", "conversation-menu");
    menu.id = menuId;
    menu.hidden = true;
    menu.setAttribute("role", "group");
    menu.setAttribute("aria-label", `Options for “${title}”`);
    const { pinned, archived } = conversation;
    menu.append(action("Rename", () => rename(conversation, item, more)));
    if (!archived) {
      menu.append(action(pinned ? "Unpin" : "Pin", () => update(conversation, { pinned: !pinned }, pinned ? "Unpinned." : "Pinned.")));
    }
    menu.append(
      action(archived ? "Unarchive" : "Archive", () => update(conversation, { archived: !archived },
        archived ? "Moved back to your conversations." : "Archived.")),
      action("Delete", () => remove(conversation), "danger"),
    );
    for (const child of Array.from(menu.children)) child.dataset.focusKey = `${child.textContent}-${conversation.id}`;
    more.addEventListener("click", () => (menu.hidden ? showMenu(more, menu) : closeMenu(true)));
    menu.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        closeMenu(true);
      }
    });

    item.append(link, more, menu);
    return item;
  }

  function action(label, onClick, variant) {
    const node = el("button", `conversation-action${variant ? ` conversation-action-${variant}` : ""}`, label);
    node.type = "button";
    node.addEventListener("click", onClick);
    return node;
  }

  function showMenu(button, menu) {
    closeMenu();
    menu.hidden = false;
    button.setAttribute("aria-expanded", "true");
    openMenu = { button, menu };
    menu.querySelector("button").focus();
  }

  function closeMenu(returnFocus = false) {
    if (!openMenu) return;
    const { button, menu } = openMenu;
    openMenu = null;
    menu.hidden = true;
    button.setAttribute("aria-expanded", "false");
    if (returnFocus) button.focus();
  }

  async function update(conversation, changes, done) {
    closeMenu();
    try {
      await api.json(conversationUrl(conversation.id), { method: "PATCH", body: changes });
      await load();
      say(done);
      const back = ui.lists.querySelector(`[data-focus-key="more-${CSS.escape(conversation.id)}"]`);
      (back || ui.search).focus();
    } catch (error) {
      say(`Could not change “${titleOf(conversation)}”: ${error.message}`);
    }
  }

  function rename(conversation, item, more) {
    closeMenu();
    const form = el("form", "conversation-rename");
    const input = el("input");
    input.type = "text";
    input.value = conversation.title;
    input.maxLength = 200;
    input.setAttribute("aria-label", "New name for the conversation");
    form.append(input);
    const link = item.querySelector(".conversation-link");
    link.hidden = true;
    more.hidden = true;
    item.prepend(form);
    input.focus();
    input.select();
    let finished = false;
    const finish = async (save) => {
      if (finished) return;
      finished = true;
      const title = input.value.trim();
      if (save && title && title !== conversation.title) {
        try {
          await api.json(conversationUrl(conversation.id), { method: "PATCH", body: { title } });
          conversation.title = title;
          onRenamed(conversation.id, title);
          say("Renamed.");
        } catch (error) {
          say(`Could not rename: ${error.message}`);
        }
      }
      render();
      const back = ui.lists.querySelector(`[data-focus-key="more-${CSS.escape(conversation.id)}"]`);
      if (back) back.focus();
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      finish(true);
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        finish(false);
      }
    });
    input.addEventListener("blur", () => finish(true));
  }

  async function remove(conversation) {
    closeMenu();
    if (!window.confirm(`Delete “${titleOf(conversation)}”? Its messages are deleted too; this cannot be undone.`)) {
      const back = ui.lists.querySelector(`[data-focus-key="more-${CSS.escape(conversation.id)}"]`);
      if (back) back.focus();
      return;
    }
    const position = items.findIndex((item) => item.id === conversation.id);
    try {
      await api.json(conversationUrl(conversation.id), { method: "DELETE" });
    } catch (error) {
      say(`Could not delete “${titleOf(conversation)}”: ${error.message}`);
      return;
    }
    items = items.filter((item) => item.id !== conversation.id);
    render();
    say("Deleted.");
    onDeleted(conversation.id);
    // Focus goes to the conversation that took its place, else the search box.
    const next = items[Math.min(position, items.length - 1)];
    const target = next && ui.lists.querySelector(`[data-focus-key="link-${CSS.escape(next.id)}"]`);
    (target || ui.search).focus();
  }

  ui.searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    window.clearTimeout(searchTimer);
    load();
  });
  ui.search.addEventListener("input", () => {
    window.clearTimeout(searchTimer);
    searchTimer = window.setTimeout(load, SEARCH_DELAY_MS);
  });
  ui.archived.addEventListener("click", () => {
    showArchived = !showArchived;
    ui.archived.setAttribute("aria-pressed", String(showArchived));
    load();
  });
  document.addEventListener("click", (event) => {
    if (openMenu && !openMenu.menu.contains(event.target) && !openMenu.button.contains(event.target)) closeMenu();
  });

  return {
    load,
    setCurrent(id) {
      currentId = id;
      for (const link of ui.lists.querySelectorAll(".conversation-link")) {
        const here = link.parentElement.dataset.conversationId === id;
        if (here) link.setAttribute("aria-current", "page");
        else link.removeAttribute("aria-current");
      }
    },
  };
}
