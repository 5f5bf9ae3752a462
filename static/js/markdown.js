// A small Markdown renderer for model answers that builds DOM nodes only.
//
// Safety comes from construction, not from sanitising: text only ever reaches the page through
// textContent / text nodes, elements come from a fixed list, and links keep only http(s) and
// mailto URLs. Any HTML in the answer (<script>, <img onerror>, ...) is shown as plain text.
//
// Covers what models write: paragraphs, line breaks, headings, fenced code blocks (also unclosed,
// while streaming), inline code, bold, italic, strikethrough, links, lists (nested), block quotes,
// tables and rules.

const FENCE = /^ {0,3}(`{3,}|~{3,})[ \t]*([^`\s]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}>[ \t]?(.*)$/;
const LIST_ITEM = /^( *)([-*+]|\d{1,9}[.)])[ \t]+(.*)$/;
const TABLE_DIVIDER = /^[ \t]*\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$/;
const SAFE_URL = /^(https?:\/\/|mailto:)/i;

const INLINE = new RegExp(
  [
    /(?<tick>`+)(?<code>[\s\S]*?[^`])\k<tick>(?!`)/.source,
    /\\(?<esc>[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~])/.source,
    /(?<bang>!?)\[(?<label>(?:[^[\]\n]|\[[^[\]\n]*\])+)\]\([ \t]*<?(?<href>[^\s()<>]+(?:\([^\s()<>]*\)[^\s()<>]*)*)>?(?:[ \t]+(?:"[^"\n]*"|'[^'\n]*'))?[ \t]*\)/.source,
    /\*\*(?=\S)(?<strong>[\s\S]*?\S)\*\*/.source,
    /(?<![\p{L}\p{N}])__(?=\S)(?<strong2>[\s\S]*?\S)__(?![\p{L}\p{N}])/.source,
    /~~(?=\S)(?<del>[\s\S]*?\S)~~/.source,
    /\*(?=[^\s*])(?<em>[\s\S]*?[^\s*])\*/.source,
    /(?<![\p{L}\p{N}])_(?=[^\s_])(?<em2>[\s\S]*?[^\s_])_(?![\p{L}\p{N}])/.source,
    /(?<url>https?:\/\/[^\s<>]*[^\s<>.,:;!?'")\]}*_~])/.source,
    /(?<br>[ \t]*\\?\n)/.source,
  ].join("|"),
  "gu",
);

export function renderMarkdown(source) {
  const fragment = document.createDocumentFragment();
  const lines = String(source).replace(/\r\n?/g, "\n").replace(/\t/g, "    ").split("\n");
  renderBlocks(lines, fragment);
  return fragment;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function isBlank(line) {
  return line.trim() === "";
}

function startsBlock(lines, i) {
  const line = lines[i];
  return (
    FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) ||
    LIST_ITEM.test(line) || isTableStart(lines, i)
  );
}

function renderBlocks(lines, parent) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    let match;
    if (isBlank(line)) {
      i += 1;
    } else if ((match = FENCE.exec(line))) {
      i = codeBlock(lines, i, match, parent);
    } else if ((match = HEADING.exec(line))) {
      const level = Math.min(match[1].length + 2, 6); // h1 and h2 belong to the page
      const heading = el(`h${level}`, `md-h${match[1].length}`);
      renderInline(match[2], heading);
      parent.append(heading);
      i += 1;
    } else if (RULE.test(line)) {
      parent.append(el("hr"));
      i += 1;
    } else if (QUOTE.test(line)) {
      const inner = [];
      while (i < lines.length && (match = QUOTE.exec(lines[i]))) {
        inner.push(match[1]);
        i += 1;
      }
      const quote = el("blockquote");
      renderBlocks(inner, quote);
      parent.append(quote);
    } else if (LIST_ITEM.test(line)) {
      i = list(lines, i, parent);
    } else if (isTableStart(lines, i)) {
      i = table(lines, i, parent);
    } else {
      i = paragraph(lines, i, parent);
    }
  }
}

function paragraph(lines, start, parent) {
  const text = [lines[start].trim()];
  let i = start + 1;
  while (i < lines.length && !isBlank(lines[i]) && !startsBlock(lines, i)) {
    text.push(lines[i].trim());
    i += 1;
  }
  const p = el("p");
  renderInline(text.join("\n"), p);
  parent.append(p);
  return i;
}

function codeBlock(lines, start, match, parent) {
  const fence = match[1];
  const closing = new RegExp(`^ {0,3}${fence[0]}{${fence.length},}[ \\t]*$`);
  const body = [];
  let i = start + 1;
  while (i < lines.length) {
    if (closing.test(lines[i])) {
      i += 1;
      break;
    }
    body.push(lines[i]);
    i += 1;
  }
  parent.append(codeElement(body.join("\n"), match[2]));
  return i;
}

function codeElement(code, language) {
  const block = el("div", "code-block");
  const head = el("div", "code-head");
  head.append(el("span", "code-lang", language || "code"));
  if (navigator.clipboard) {
    const copy = el("button", "code-copy", "Copy");
    copy.type = "button";
    copy.addEventListener("click", () => {
      navigator.clipboard.writeText(code).then(
        () => { copy.textContent = "Copied"; setTimeout(() => { copy.textContent = "Copy"; }, 1500); },
        () => { copy.textContent = "Copy failed"; },
      );
    });
    head.append(copy);
  }
  const pre = el("pre");
  pre.tabIndex = 0; // it scrolls sideways: keyboard users scroll it once it has the focus (WCAG 2.1.1)
  const codeNode = el("code", language ? `language-${language.replace(/[^\w+#-]/g, "")}` : "", code);
  pre.append(codeNode);
  block.append(head, pre);
  return block;
}

function indentOf(line) {
  return line.length - line.trimStart().length;
}

function dedent(line, amount) {
  const remove = Math.min(amount, indentOf(line));
  return line.slice(remove);
}

function list(lines, start, parent) {
  const first = LIST_ITEM.exec(lines[start]);
  const indent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const node = el(ordered ? "ol" : "ul");
  if (ordered && parseInt(first[2], 10) !== 1) node.start = parseInt(first[2], 10);
  const items = [];
  let loose = false;
  let i = start;
  while (i < lines.length) {
    const line = lines[i];
    const match = LIST_ITEM.exec(line);
    if (match && match[1].length <= indent + 1 && /\d/.test(match[2]) === ordered) {
      items.push({ lines: [match[3]], contentIndent: match[1].length + match[2].length + 1 });
      i += 1;
      continue;
    }
    const item = items[items.length - 1];
    if (isBlank(line)) {
      let next = i + 1;
      while (next < lines.length && isBlank(lines[next])) next += 1;
      if (next >= lines.length) break;
      const nextItem = LIST_ITEM.exec(lines[next]);
      const sibling = nextItem && nextItem[1].length <= indent + 1 && /\d/.test(nextItem[2]) === ordered;
      if (!sibling && indentOf(lines[next]) <= indent) break;
      for (; i < next; i += 1) item.lines.push("");
      loose = loose || sibling;
      continue;
    }
    if (indentOf(line) > indent || !startsBlock(lines, i)) {
      item.lines.push(dedent(line, item.contentIndent));
      i += 1;
      continue;
    }
    break;
  }
  for (const item of items) {
    const li = el("li");
    renderBlocks(item.lines, li);
    if (!loose) unwrapParagraphs(li);
    node.append(li);
  }
  parent.append(node);
  return i;
}

// A tight list item shows its one paragraph inline; an item with several keeps them apart.
function unwrapParagraphs(li) {
  const paragraphs = Array.from(li.children).filter((child) => child.tagName === "P");
  if (paragraphs.length === 1) paragraphs[0].replaceWith(...paragraphs[0].childNodes);
}

function isTableStart(lines, i) {
  return (
    i + 1 < lines.length && lines[i].includes("|") && lines[i + 1].includes("|") &&
    TABLE_DIVIDER.test(lines[i + 1])
  );
}

function splitRow(line) {
  const cells = line.trim().replace(/^\|/, "").replace(/(?<!\\)\|$/, "").split(/(?<!\\)\|/);
  return cells.map((cell) => cell.trim().replace(/\\\|/g, "|"));
}

function table(lines, start, parent) {
  const header = splitRow(lines[start]);
  const aligns = splitRow(lines[start + 1]).map((cell) => {
    if (cell.startsWith(":") && cell.endsWith(":")) return "align-center";
    if (cell.endsWith(":")) return "align-right";
    return "";
  });
  const node = el("table");
  const head = el("thead");
  const headRow = el("tr");
  header.forEach((cell, index) => {
    const th = el("th", aligns[index] || "");
    renderInline(cell, th);
    headRow.append(th);
  });
  head.append(headRow);
  const body = el("tbody");
  let i = start + 2;
  while (i < lines.length && !isBlank(lines[i]) && lines[i].includes("|")) {
    const row = el("tr");
    splitRow(lines[i]).slice(0, header.length).forEach((cell, index) => {
      const td = el("td", aligns[index] || "");
      renderInline(cell, td);
      row.append(td);
    });
    body.append(row);
    i += 1;
  }
  node.append(head, body);
  const wrap = el("div", "table-wrap");
  wrap.tabIndex = 0; // a wide table scrolls sideways: keyboard users scroll it once it has the focus
  wrap.append(node);
  parent.append(wrap);
  return i;
}

function renderInline(text, parent, { links = true } = {}) {
  let last = 0;
  for (const match of text.matchAll(INLINE)) {
    const groups = match.groups;
    if (!links && (groups.label !== undefined || groups.url !== undefined)) continue;
    if (match.index > last) parent.append(document.createTextNode(text.slice(last, match.index)));
    last = match.index + match[0].length;
    if (groups.code !== undefined) {
      const code = groups.code;
      const trimmed = code.length > 2 && code.startsWith(" ") && code.endsWith(" ") ? code.slice(1, -1) : code;
      parent.append(el("code", "", trimmed));
    } else if (groups.esc !== undefined) {
      parent.append(document.createTextNode(groups.esc));
    } else if (groups.label !== undefined) {
      parent.append(link(groups.label, groups.href, groups.bang === "!"));
    } else if (groups.strong !== undefined || groups.strong2 !== undefined) {
      const strong = el("strong");
      renderInline(groups.strong ?? groups.strong2, strong, { links });
      parent.append(strong);
    } else if (groups.del !== undefined) {
      const del = el("del");
      renderInline(groups.del, del, { links });
      parent.append(del);
    } else if (groups.em !== undefined || groups.em2 !== undefined) {
      const em = el("em");
      renderInline(groups.em ?? groups.em2, em, { links });
      parent.append(em);
    } else if (groups.url !== undefined) {
      parent.append(link(groups.url, groups.url, false));
    } else if (groups.br !== undefined) {
      parent.append(el("br"));
    }
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
}

// Images are never loaded (they could track the reader): they become links to the image.
function link(label, href, isImage) {
  if (!SAFE_URL.test(href)) {
    const span = el("span");
    renderInline(label, span, { links: false });
    return span;
  }
  const a = el("a");
  a.href = href;
  a.rel = "noopener noreferrer nofollow";
  a.target = "_blank";
  if (isImage) a.textContent = label || href;
  else renderInline(label, a, { links: false });
  return a;
}
