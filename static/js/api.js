// Talking to our own JSON API from the pages: the session cookie and the CSRF header authenticate,
// and every error arrives in the one shape {message, code, settings_url}.

export function createApi(csrfToken) {
  async function request(url, { method = "GET", body, signal, headers = {} } = {}) {
    const init = { method, headers: { Accept: "application/json", ...headers }, credentials: "same-origin", signal };
    if (method !== "GET") init.headers["X-CSRFToken"] = csrfToken;
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init);
  }

  // The JSON of a successful answer (null for 204), or throws an ApiError.
  async function json(url, options) {
    let response;
    try {
      response = await request(url, options);
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw networkError();
    }
    if (!response.ok) throw await errorOf(response);
    if (response.status === 204) return null;
    return response.json();
  }

  return { request, json };
}

export class ApiError extends Error {
  constructor({ message, code, settingsUrl, retryAfter, status }) {
    super(message);
    this.code = code || "";
    this.settingsUrl = settingsUrl;
    this.retryAfter = retryAfter;
    this.status = status || 0;
  }
}

export function networkError() {
  return new ApiError({ message: "Could not reach the server. Check your connection and try again.", code: "network" });
}

// Only a link back to this site is followed; anything else falls back to the settings page.
export function sameOriginUrl(url, fallback) {
  try {
    const parsed = new URL(url, window.location.href);
    return parsed.origin === window.location.origin ? parsed.href : fallback;
  } catch {
    return fallback;
  }
}

// Seconds to wait before trying again, from a Retry-After header (seconds, or an HTTP date).
export function retryAfterSeconds(value) {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

export async function errorOf(response) {
  let data = null;
  try {
    data = await response.json();
  } catch {
    // not JSON (a proxy's error page, say): describe the status instead
  }
  const message = data && typeof data.message === "string" && data.message
    ? data.message
    : `The server answered with an error (HTTP ${response.status}). Please try again.`;
  return new ApiError({
    message,
    code: data && data.code,
    settingsUrl: data && data.settings_url,
    retryAfter: retryAfterSeconds(response.headers.get("Retry-After")),
    status: response.status,
  });
}
