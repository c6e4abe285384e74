// The playground: chat with a served model, compare models side by side, see the server.
import { render } from "/playground/markdown.js";
import { AuthError, describe, getJson, setApiKey, streamChat } from "/playground/api.js";

const $ = (id) => document.getElementById(id);
const STORE = "lantern.conversation";
let models = [];
let messages = JSON.parse(localStorage.getItem(STORE) || "[]");
let running = null;

function save() {
  localStorage.setItem(STORE, JSON.stringify(messages));
}

async function askKey() {
  const dialog = $("key-dialog");
  dialog.showModal();
  await new Promise((resolve) => dialog.addEventListener("close", resolve, { once: true }));
  setApiKey($("key").value.trim());
}

/** Runs `call`, asking for an API key once when the server wants one. */
async function withKey(call) {
  try {
    return await call();
  } catch (e) {
    if (!(e instanceof AuthError)) throw e;
    await askKey();
    return call();
  }
}

function fillModels(select, chosen) {
  select.replaceChildren(...models.map((m) => {
    const o = document.createElement("option");
    o.value = m.id;
    o.textContent = `${m.id} (${m.status || "loaded"})`;
    return o;
  }));
  if (chosen && models.some((m) => m.id === chosen)) select.value = chosen;
}

async function loadModels() {
  const list = await withKey(() => getJson("/v1/models"));
  models = list.data;
  fillModels($("model"), $("model").value);
  for (const pane of document.querySelectorAll(".pane select")) fillModels(pane, pane.value);
}

function number(id) {
  const v = $(id).value;
  return v === "" ? undefined : Number(v);
}

/** The request fields the settings ask for (chat view, or a compare pane's own). */
function parameters(root = document) {
  const get = (name) => root.querySelector(`[data-param="${name}"]`) || $(name);
  const value = (name) => (get(name).value === "" ? undefined : Number(get(name).value));
  const body = {
    temperature: value("temperature"), top_p: value("top_p"), top_k: value("top_k"),
    min_p: value("min_p"), max_tokens: value("max_tokens"), seed: value("seed"),
  };
  const stop = $("stop").value.split("\n").filter((s) => s);
  if (stop.length) body.stop = stop;
  const format = $("format").value;
  if (format === "json_object") body.response_format = { type: "json_object" };
  if (format === "json_schema") {
    body.response_format = { type: "json_schema", json_schema: { name: "schema", schema: JSON.parse($("schema").value || "{}") } };
  }
  if ($("tools").value.trim()) body.tools = JSON.parse($("tools").value);
  return Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined));
}

function conversation() {
  const system = $("system").value.trim();
  const turns = messages.map(({ role, content }) => ({ role, content }));
  return system ? [{ role: "system", content: system }, ...turns] : turns;
}

function messageItem(m, index) {
  const li = document.createElement("li");
  li.className = m.role;
  const head = document.createElement("div");
  head.className = "role";
  head.append(m.role);
  const buttons = m.role === "user" ? [["Edit", () => edit(index)]] : [["Copy", () => navigator.clipboard.writeText(m.content)]];
  for (const [label, action] of buttons) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.addEventListener("click", action);
    head.append(b);
  }
  const body = document.createElement("div");
  body.className = "content";
  render(body, m.content);
  const stats = document.createElement("div");
  stats.className = "stats";
  stats.textContent = m.stats || "";
  li.append(head, body, stats);
  return li;
}

function show() {
  $("messages").replaceChildren(...messages.map(messageItem));
}

function edit(index) {
  $("prompt").value = messages[index].content;
  messages = messages.slice(0, index);
  save();
  show();
  $("prompt").focus();
}

async function reply() {
  const answer = { role: "assistant", content: "", stats: "" };
  messages.push(answer);
  show();
  const item = $("messages").lastElementChild;
  const body = item.querySelector(".content");
  running = new AbortController();
  $("stop-button").disabled = false;
  $("send").disabled = true;
  try {
    const figures = await withKey(() => {
      answer.content = "";
      return streamChat({ model: $("model").value, messages: conversation().slice(0, -1), ...parameters() },
        (text) => { answer.content += text; render(body, answer.content); }, running.signal);
    });
    answer.stats = describe(figures);
  } catch (e) {
    answer.stats = e.name === "AbortError" ? "stopped" : `error: ${e.message}`;
    if (e.name !== "AbortError") item.classList.add("error");
  } finally {
    running = null;
    $("stop-button").disabled = true;
    $("send").disabled = false;
    item.querySelector(".stats").textContent = answer.stats;
    save();
  }
}

async function send(event) {
  event.preventDefault();
  const text = $("prompt").value;
  if (!text.trim() || running) return;
  $("prompt").value = "";
  messages.push({ role: "user", content: text });
  save();
  await reply();
}

function stop() {
  if (running) running.abort();
  for (const pane of panes) if (pane.running) pane.running.abort();
}

async function regenerate() {
  if (running) return;
  while (messages.length && messages[messages.length - 1].role === "assistant") messages.pop();
  if (messages.length) await reply();
}

// ---- compare ----------------------------------------------------------------------------
const panes = [];

function addPane() {
  const root = document.createElement("div");
  root.className = "pane";
  const n = panes.length + 1;
  root.innerHTML = `<label>Model <select aria-label="Model of pane ${n}"></select></label>
    <label>temperature <input data-param="temperature" type="number" step="0.1" min="0" max="2" value="0"></label>
    <label>max tokens <input data-param="max_tokens" type="number" min="1" value="256"></label>
    <div class="answer"><div class="content"></div><div class="stats"></div></div>`;
  const pane = { root, select: root.querySelector("select"), running: null };
  fillModels(pane.select, models[panes.length % Math.max(models.length, 1)]?.id);
  panes.push(pane);
  $("panes").append(root);
}

async function compare(event) {
  event.preventDefault();
  const prompt = $("compare-prompt").value;
  if (!prompt.trim()) return;
  await Promise.all(panes.map(async (pane) => {
    const body = pane.root.querySelector(".content");
    const stats = pane.root.querySelector(".stats");
    let text = "";
    render(body, "");
    stats.textContent = "";
    pane.running = new AbortController();
    const fields = {
      temperature: Number(pane.root.querySelector('[data-param="temperature"]').value),
      max_tokens: Number(pane.root.querySelector('[data-param="max_tokens"]').value),
    };
    try {
      const figures = await withKey(() => streamChat({ model: pane.select.value, messages: [{ role: "user", content: prompt }], ...fields },
        (piece) => { text += piece; render(body, text); }, pane.running.signal));
      stats.textContent = describe(figures);
    } catch (e) {
      stats.textContent = e.name === "AbortError" ? "stopped" : `error: ${e.message}`;
    } finally {
      pane.running = null;
    }
  }));
}

// ---- server -----------------------------------------------------------------------------
/** Prometheus text → {name: {model: value}} for the gauges the view shows. */
function gauges(text) {
  const out = {};
  for (const line of text.split("\n")) {
    const m = line.match(/^(lantern_[a-z_]+)\{[^}]*model="([^"]*)"[^}]*\} (\S+)$/);
    if (m) (out[m[1]] ||= {})[m[2]] = Number(m[3]);
  }
  return out;
}

async function refreshServer() {
  await loadModels();
  let health = "unknown";
  let metrics = {};
  try { health = (await (await fetch("/health")).json()).status; } catch { /* unknown */ }
  try {
    const r = await fetch("/metrics", { headers: { Authorization: `Bearer ${sessionStorage.getItem("lantern.apiKey") || ""}` } });
    if (r.ok) metrics = gauges(await r.text());
  } catch { /* no metrics */ }
  const at = (name, id) => (metrics[name] && id in metrics[name] ? metrics[name][id] : "");
  const rows = models.filter((m) => !m.parent).map((m) => {
    const tr = document.createElement("tr");
    const mib = m.memory_bytes ? `${(m.memory_bytes / 1048576).toFixed(0)} MiB` : "";
    for (const v of [m.id, m.status || "", mib, at("lantern_slots_busy", m.id), at("lantern_slots_total", m.id), at("lantern_requests_waiting", m.id)]) {
      const td = document.createElement("td");
      td.textContent = String(v);
      tr.append(td);
    }
    return tr;
  });
  $("server-table").tBodies[0].replaceChildren(...rows);
  $("health").textContent = `health: ${health}`;
}

function showView(name) {
  for (const view of ["chat", "compare", "server"]) {
    $(view).hidden = view !== name;
    $(`view-${view}`).setAttribute("aria-pressed", String(view === name));
  }
  if (name === "server") refreshServer();
  if (name === "compare" && panes.length === 0) { addPane(); addPane(); }
}

// ---- conversations in the browser --------------------------------------------------------
function exportConversation() {
  const blob = new Blob([JSON.stringify({ system: $("system").value, messages }, null, 2)], { type: "application/json" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = "conversation.json";
  a.click();
  URL.revokeObjectURL(a.href);
}

async function importConversation(event) {
  const file = event.target.files[0];
  if (!file) return;
  const data = JSON.parse(await file.text());
  $("system").value = data.system || "";
  messages = (data.messages || []).filter((m) => typeof m.content === "string" && ["user", "assistant"].includes(m.role));
  save();
  show();
}

$("composer").addEventListener("submit", send);
$("prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("composer").requestSubmit(); }
});
document.addEventListener("keydown", (e) => { if (e.key === "Escape") stop(); });
$("stop-button").addEventListener("click", stop);
$("regenerate").addEventListener("click", regenerate);
$("clear").addEventListener("click", () => { messages = []; save(); show(); });
$("export").addEventListener("click", exportConversation);
$("import").addEventListener("change", importConversation);
$("add-pane").addEventListener("click", addPane);
$("compare-form").addEventListener("submit", compare);
$("compare-stop").addEventListener("click", stop);
$("refresh").addEventListener("click", refreshServer);
for (const view of ["chat", "compare", "server"]) $(`view-${view}`).addEventListener("click", () => showView(view));
show();
loadModels().catch((e) => { $("health").textContent = e.message; });
