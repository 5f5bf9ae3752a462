// Server-Sent Events from a fetch() response (EventSource cannot POST): yields {id, event, data}
// for each event, as the HTML standard's parser reads them. Lines end in \n, \r\n or \r; "data:"
// lines are joined with \n; a blank line ends an event; lines starting with ":" are comments.

export async function* readEvents(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder("utf-8");
  let buffer = "";
  let event = { id: "", event: "message", data: [] };
  try {
    for (;;) {
      const { done, value } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      let end;
      // A lone \r at the end of the buffer may be the first half of \r\n: wait for more.
      while ((end = lineEnd(buffer, done)) !== -1) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(buffer[end] === "\r" && buffer[end + 1] === "\n" ? end + 2 : end + 1);
        if (line === "") {
          if (event.data.length) yield { id: event.id, event: event.event, data: event.data.join("\n") };
          event = { id: event.id, event: "message", data: [] };
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let value = colon === -1 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") event.data.push(value);
        else if (field === "event") event.event = value;
        else if (field === "id") event.id = value;
      }
      if (done) return; // an event without its blank line is incomplete: dropped, as browsers do
    }
  } finally {
    reader.releaseLock();
  }
}

function lineEnd(buffer, done) {
  for (let i = 0; i < buffer.length; i += 1) {
    const char = buffer[i];
    if (char === "\n") return i;
    if (char === "\r") return i + 1 < buffer.length || done ? i : -1;
  }
  return -1;
}
