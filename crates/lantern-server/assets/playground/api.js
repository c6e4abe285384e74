// Talking to the Lantern that served this page (same origin only): the API key from session
// storage, streamed chat completions read as Server-Sent Events, and per-reply figures.

const KEY = "lantern.apiKey";

export function apiKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function setApiKey(key) {
  sessionStorage.setItem(KEY, key);
}

function headers(extra = {}) {
  const h = { "Content-Type": "application/json", ...extra };
  const key = apiKey();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

export class AuthError extends Error {}

export async function getJson(path) {
  const r = await fetch(path, { headers: headers() });
  if (r.status === 401) throw new AuthError("API key required");
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

/**
 * Streams a chat completion. `onDelta(text)` gets every content piece; resolves with the
 * figures: time to first token, tokens/s, usage and the response cache's verdict.
 */
export async function streamChat(body, onDelta, signal) {
  const started = performance.now();
  const r = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: headers(),
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
    signal,
  });
  if (r.status === 401) throw new AuthError("API key required");
  if (!r.ok) {
    let message = `HTTP ${r.status}`;
    try { message = (await r.json()).error.message; } catch { /* not JSON */ }
    throw new Error(message);
  }
  const figures = { cache: r.headers.get("x-lantern-cache") || "", ttft: null, usage: null, finish: null };
  let first = null;
  let last = started;
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("");
      if (!data || data === "[DONE]") continue;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      if (chunk.usage) figures.usage = chunk.usage;
      const choice = chunk.choices && chunk.choices[0];
      if (choice && choice.finish_reason) figures.finish = choice.finish_reason;
      const text = choice && choice.delta && (choice.delta.content || choice.delta.reasoning_content);
      if (text) {
        const now = performance.now();
        if (first === null) first = now;
        last = now;
        onDelta(text);
      }
    }
  }
  if (first !== null) {
    figures.ttft = first - started;
    const n = figures.usage ? figures.usage.completion_tokens : 0;
    figures.tokensPerSecond = n > 1 && last > first ? ((n - 1) * 1000) / (last - first) : null;
  }
  return figures;
}

/** One line of figures for a finished reply. */
export function describe(f) {
  const parts = [];
  if (f.ttft !== null) parts.push(`TTFT ${f.ttft.toFixed(0)} ms`);
  if (f.tokensPerSecond) parts.push(`${f.tokensPerSecond.toFixed(1)} tok/s`);
  if (f.usage) {
    const cached = (f.usage.prompt_tokens_details || {}).cached_tokens || 0;
    parts.push(`prompt ${f.usage.prompt_tokens} (cached ${cached}), completion ${f.usage.completion_tokens}`);
  }
  if (f.cache) parts.push(`cache ${f.cache}`);
  if (f.finish) parts.push(`finish ${f.finish}`);
  return parts.join(" · ");
}
