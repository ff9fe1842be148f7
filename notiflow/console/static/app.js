// Notiflow local console: executions list and execution page, drawn from the JSON API.
// Every value from the API is untrusted (notification ids and payloads come from senders):
// the DOM is built with createElement/textContent only, never innerHTML.
"use strict";

const POLL_MS = 1000; // a run in progress is followed every second
const LIST_POLL_MS = 2000; // the list refreshes on its own whatever the runs' states
const IDLE_POLL_MS = 5000; // a finished run is re-read now and then (a redrive may start elsewhere)
const ERROR_RETRY_MS = 3000;
const MAX_ERROR_RETRIES = 10;
const SVG_NS = "http://www.w3.org/2000/svg";

const OUTCOMES = [
  ["succeeded", "Succeeded"],
  ["retried", "Succeeded after retries"],
  ["caught", "Caught error"],
  ["failed", "Failed"],
  ["running", "In progress"],
  ["not-reached", "Not reached"],
];
const RUN_STATUSES = ["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"];
const RECORD_STATUSES = ["PROCESSING", "SUCCESS", "FAILED", "REJECTED"];

const state = {
  definition: null,
  generation: 0,
  timer: null,
  lastText: null,
  expandedEvents: new Set(),
  selectedState: null,
  selectedPass: null,
  view: null,
  refresh: null,
  redrives: new Map(), // execution ARN -> the redrive this page started and is following
};

// ---------------------------------------------------------------------------------------------
// DOM helpers
// ---------------------------------------------------------------------------------------------

function append(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function build(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.setAttribute("class", value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  return el;
}

function h(tag, attrs, ...children) {
  return append(build(document.createElement(tag), attrs), ...children);
}

function svg(tag, attrs, ...children) {
  return append(build(document.createElementNS(SVG_NS, tag), attrs), ...children);
}

function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

const $ = (selector) => document.querySelector(selector);
const dash = () => h("span", { class: "empty-value" }, "—");

// ARNs wrap at their colons rather than inside a word.
function breakable(text) {
  const parts = String(text).split(":");
  return parts.flatMap((part, index) => (index < parts.length - 1 ? [`${part}:`, h("wbr", {})] : [part]));
}

// ---------------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------------

const pad = (n, width = 2) => String(n).padStart(width, "0");

function fmtDate(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function fmtClock(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

function fmtMs(ms) {
  if (ms === null || ms === undefined) return "—";
  return ms < 1000 ? `${ms} ms` : fmtDuration(ms / 1000);
}

function humanize(text) {
  return String(text).toLowerCase().replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
}

// Pretty JSON when the text is JSON; Lambda error causes nest JSON inside errorMessage, unwrap one level.
function pretty(value) {
  if (value === null || value === undefined) return "";
  let parsed = value;
  if (typeof value === "string") {
    try {
      parsed = JSON.parse(value);
    } catch {
      return value;
    }
  }
  if (parsed && typeof parsed === "object" && typeof parsed.errorMessage === "string") {
    try {
      parsed = { ...parsed, errorMessage: JSON.parse(parsed.errorMessage) };
    } catch {
      /* a plain message stays as it is */
    }
  }
  return typeof parsed === "string" ? parsed : JSON.stringify(parsed, null, 2);
}

// One line out of an error cause: the delivery outcome's errorDetails when the cause carries one.
function causeSummary(cause) {
  if (!cause) return null;
  let value = cause;
  for (let depth = 0; depth < 3 && typeof value === "string"; depth++) {
    try {
      value = JSON.parse(value);
    } catch {
      break;
    }
    if (value && typeof value === "object" && typeof value.errorMessage === "string") value = value.errorMessage;
  }
  if (value && typeof value === "object") {
    const outcome = value.outcome && typeof value.outcome === "object" ? value.outcome : value;
    value = outcome.errorDetails || outcome.failureReason || JSON.stringify(value);
  }
  const text = String(value);
  return text.length > 200 ? `${text.slice(0, 199)}…` : text;
}

function badge(status, kind) {
  if (!status) return h("span", { class: "badge badge-none" }, "—");
  return h("span", { class: `badge badge-${kind}-${String(status).toLowerCase()}`, dataset: { status } }, humanize(status));
}

// ---------------------------------------------------------------------------------------------
// API and polling
// ---------------------------------------------------------------------------------------------

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { Accept: "application/json", ...(options.headers || {}) },
    cache: "no-store",
  });
  const text = await response.text();
  let data = null;
  try {
    data = JSON.parse(text);
  } catch {
    data = { error: text };
  }
  if (!response.ok) throw new Error((data && data.error) || `HTTP ${response.status}`);
  return { data, text };
}

// ``live``: the page follows a run in progress (polled every second). The time of the last answer is
// always shown: every page keeps refreshing on its own.
function setLive(live, detail) {
  const el = $("#live");
  el.dataset.live = live ? "true" : "false";
  document.body.dataset.live = live ? "true" : "false";
  $("#live-text").textContent = detail || (live ? "Live" : "Auto-refresh");
}

function markUpdated(live) {
  const now = new Date();
  const clock = fmtClock(now.toISOString()).slice(0, 8);
  setLive(live, `${live ? "Live" : "Auto-refresh"} · updated ${clock}`);
  for (const el of document.querySelectorAll("[data-updated]")) {
    el.dataset.updated = now.toISOString();
    el.textContent = `Updated ${clock}`;
  }
}

function showBanner(message, kind = "error") {
  const banner = $("#banner");
  if (!message) {
    banner.hidden = true;
    return;
  }
  banner.className = `banner banner-${kind}`;
  banner.textContent = message;
  banner.hidden = false;
}

function stopPolling() {
  clearTimeout(state.timer);
  state.timer = null;
}

// Runs ``load`` now, then again after the delay it returns (milliseconds; null stops). A new route or a
// new generation stops it; ``state.refresh`` runs it at once (the Refresh buttons).
function poll(load) {
  stopPolling();
  const generation = ++state.generation;
  let failures = 0;
  const tick = async () => {
    clearTimeout(state.timer);
    let delay = null;
    try {
      delay = await load(generation);
      failures = 0;
      if (generation === state.generation) showBanner(null);
    } catch (error) {
      if (generation !== state.generation) return;
      failures += 1;
      const giveUp = failures >= MAX_ERROR_RETRIES;
      showBanner(`Could not reach the console API: ${error.message}${giveUp ? " (stopped retrying; reload the page)" : ""}`);
      setLive(false, "Disconnected");
      if (giveUp) return;
      delay = ERROR_RETRY_MS;
    }
    if (generation !== state.generation || delay === null) return;
    state.timer = setTimeout(tick, delay);
  };
  state.refresh = () => {
    if (generation !== state.generation) return;
    state.lastText = null;
    tick();
  };
  tick();
}

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

function parseRoute() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = hash.split("?");
  const params = new URLSearchParams(query);
  if (path.startsWith("/executions/")) {
    return { name: "execution", arn: decodeURIComponent(path.slice("/executions/".length)) };
  }
  return { name: "list", status: params.get("status") || "", q: params.get("q") || "" };
}

function executionHref(arn) {
  return `#/executions/${encodeURIComponent(arn)}`;
}

async function route() {
  stopPolling();
  state.generation++;
  state.lastText = null;
  showBanner(null);
  if (!state.definition) {
    try {
      state.definition = (await api("/api/definition")).data;
      $("#machine").textContent = `${state.definition.name || "state machine"} · ${state.definition.type}`;
      $("#machine").title = state.definition.stateMachineArn;
    } catch (error) {
      showBanner(`Could not load the state machine definition: ${error.message}`);
      setLive(false, "Disconnected");
      setTimeout(route, ERROR_RETRY_MS);
      return;
    }
  }
  const current = parseRoute();
  if (current.name === "execution") renderExecutionPage(current.arn);
  else renderListPage(current);
}

// ---------------------------------------------------------------------------------------------
// Executions list
// ---------------------------------------------------------------------------------------------

function renderListPage(current) {
  state.view = "list";
  document.title = "Executions · Notiflow console";
  const app = clear($("#app"));
  const search = h("input", {
    id: "search",
    class: "input",
    type: "search",
    placeholder: "Search by notification id",
    value: current.q,
    autocomplete: "off",
    spellcheck: "false",
    "aria-label": "Search by notification id",
  });
  const select = h(
    "select",
    { id: "status-filter", class: "input select", "aria-label": "Filter by status" },
    h("option", { value: "" }, "All statuses"),
    h("optgroup", { label: "Run status" }, RUN_STATUSES.map((s) => h("option", { value: s }, humanize(s)))),
    h(
      "optgroup",
      { label: "Notification status" },
      RECORD_STATUSES.map((s) => h("option", { value: `RECORD:${s}` }, `Notification ${humanize(s).toLowerCase()}`)),
    ),
  );
  select.value = current.status;
  const count = h("span", { class: "muted", id: "count" }, "Loading…");
  const updated = h("span", { class: "muted small", id: "last-updated", dataset: { updated: "" } }, "");
  const newest = h("button", { class: "button", type: "button", id: "page-first", disabled: true }, "Newest");
  const older = h("button", { class: "button", type: "button", id: "page-next", disabled: true }, "Older →");
  const refresh = h("button", { class: "button", type: "button", id: "refresh-list", title: "Read this page again now" }, "Refresh");
  const body = h("tbody", { id: "execution-rows" });
  const columns = [
    ["Notification"],
    ["Run status"],
    ["Notification status"],
    ["Attempts", "num"],
    ["Last code", "num"],
    ["Redrives", "num"],
    ["Started"],
    ["Ended"],
    ["Duration", "num"],
    ["Error"],
  ];
  const table = h(
    "table",
    { class: "table", id: "executions" },
    h("thead", {}, h("tr", {}, columns.map(([label, cls]) => h("th", cls ? { class: cls } : {}, label)))),
    body,
  );
  append(
    app,
    h(
      "div",
      { class: "page-head" },
      h("div", {}, h("h1", {}, "Executions"), h("p", { class: "subtitle" }, state.definition.stateMachineArn)),
    ),
    h(
      "section",
      { class: "card" },
      h(
        "div",
        { class: "toolbar" },
        h("div", { class: "search-wrap" }, search),
        select,
        h("span", { class: "spacer" }),
        count,
        updated,
        refresh,
        newest,
        older,
      ),
      h("div", { class: "table-wrap" }, table),
    ),
  );

  // The page shown: null is the newest; a token from the API is an older page.
  let token = null;
  let nextToken = null;
  const load = async (generation) => {
    const params = new URLSearchParams();
    if (select.value) params.set("status", select.value);
    if (search.value.trim()) params.set("q", search.value.trim());
    if (token) params.set("next", token);
    const { data, text } = await api(`/api/executions?${params}`);
    if (generation !== state.generation) return null;
    if (text !== state.lastText) {
      state.lastText = text;
      renderRows(body, data, Boolean(search.value.trim() || select.value));
      const shown = data.executions.length;
      const where = token ? "an older page" : "the newest page";
      count.textContent = `${shown} run${shown === 1 ? "" : "s"} on ${where}${data.next ? " · more are older" : ""}`;
    }
    nextToken = data.next;
    older.disabled = !nextToken;
    newest.disabled = !token;
    const running = data.executions.some((row) => row.runStatus === "RUNNING");
    markUpdated(running);
    return running ? POLL_MS : LIST_POLL_MS;
  };

  const refilter = () => {
    const params = new URLSearchParams();
    if (select.value) params.set("status", select.value);
    if (search.value.trim()) params.set("q", search.value.trim());
    const hash = `#/${params.toString() ? `?${params}` : ""}`;
    history.replaceState(null, "", hash);
    token = null;
    state.lastText = null;
    poll(load);
  };
  let debounce = null;
  search.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(refilter, 200);
  });
  select.addEventListener("change", refilter);
  refresh.addEventListener("click", () => state.refresh && state.refresh());
  older.addEventListener("click", () => {
    if (!nextToken) return;
    token = nextToken;
    state.lastText = null;
    poll(load);
  });
  newest.addEventListener("click", () => {
    token = null;
    state.lastText = null;
    poll(load);
  });
  poll(load);
}

function renderRows(body, data, filtered) {
  clear(body);
  if (!data.executions.length) {
    body.append(
      h(
        "tr",
        { class: "empty" },
        h("td", { colspan: 10 }, filtered ? "No execution matches this filter." : "No executions yet. Send a notification to the queue."),
      ),
    );
    return;
  }
  for (const row of data.executions) {
    const href = executionHref(row.executionArn);
    const id = row.notificationId ?? row.name;
    const failedAgain = row.redriveCount > 0 && ["FAILED", "TIMED_OUT", "ABORTED"].includes(row.runStatus);
    body.append(
      h(
        "tr",
        { dataset: { arn: row.executionArn, notificationId: id, runStatus: row.runStatus } },
        h(
          "td",
          { class: "cell-id" },
          h("a", { href, class: "link mono", "data-col": "notification" }, id),
          row.notificationId !== null && row.name !== row.notificationId ? h("div", { class: "sub mono" }, row.name) : null,
        ),
        h("td", { "data-col": "run-status" }, badge(row.runStatus, "run")),
        h(
          "td",
          { "data-col": "record-status" },
          badge(row.recordStatus, "record"),
          row.recordStatus && !row.recordOwned ? h("span", { class: "sub", title: "The record belongs to another run" }, " other run") : null,
        ),
        h("td", { class: "num", "data-col": "attempts" }, row.attempts ?? dash()),
        h("td", { class: "num mono", "data-col": "status-code" }, row.lastStatusCode ?? dash()),
        h(
          "td",
          { class: "num nowrap", "data-col": "redrives" },
          row.redriveCount ? `×${row.redriveCount}` : dash(),
          failedAgain ? h("span", { class: "again", title: "The last redrive failed again" }, " failed again") : null,
        ),
        h("td", { class: "nowrap", "data-col": "started" }, fmtDate(row.startDate)),
        h("td", { class: "nowrap", "data-col": "ended" }, row.stopDate ? fmtDate(row.stopDate) : h("span", { class: "muted" }, "running")),
        h("td", { class: "num nowrap", "data-col": "duration" }, fmtDuration(row.durationSeconds)),
        h("td", { class: "error-name", "data-col": "error" }, row.errorName ?? ""),
      ),
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Execution page
// ---------------------------------------------------------------------------------------------

function renderExecutionPage(arn) {
  state.view = "execution";
  state.expandedEvents = new Set();
  state.selectedState = null;
  state.selectedPass = null;
  const app = clear($("#app"));
  const name = arn.split(":").pop();
  document.title = `${name} · Notiflow console`;
  const header = h("div", { class: "page-head", id: "execution-head" });
  const notice = h("div", { id: "redrive-notice" });
  const summary = h("section", { class: "card summary", id: "summary" });
  const graph = h("section", { class: "card graph-card", id: "graph-card" });
  const record = h("section", { class: "card", id: "record" });
  const events = h("section", { class: "card", id: "events" });
  append(
    app,
    h("nav", { class: "crumbs" }, h("a", { href: "#/", class: "link" }, "Executions"), h("span", { class: "crumb-sep" }, "/"), h("span", { class: "mono" }, name)),
    header,
    notice,
    summary,
    h("div", { class: "columns" }, graph, record),
    events,
  );

  const load = async (generation) => {
    const { data, text } = await api(`/api/executions/${encodeURIComponent(arn)}`);
    if (generation !== state.generation) return null;
    if (text !== state.lastText) {
      state.lastText = text;
      state.current = data;
      renderHeader(header, data, arn);
      renderSummary(summary, data);
      renderGraph(graph, data);
      renderRecord(record, data);
      renderEvents(events, data);
    }
    followRedrive(arn, data);
    renderRedriveNotice(notice, arn);
    const running = data.execution.status === "RUNNING";
    markUpdated(running);
    return running ? POLL_MS : IDLE_POLL_MS;
  };
  state.reload = () => state.refresh && state.refresh();
  poll(load);
}

// A redrive started from this page is followed until its pass ends; the outcome then stays on the page.
function followRedrive(arn, data) {
  const watch = state.redrives.get(arn);
  if (!watch || watch.outcome !== "running") return;
  const execution = data.execution;
  if ((execution.redriveCount ?? 0) < watch.count || execution.status === "RUNNING") return;
  const record = data.recordOwned ? data.record : null;
  if (execution.status === "SUCCEEDED" && record && record.status === "SUCCESS") {
    watch.outcome = "delivered";
    watch.detail = fmtDate(record.deliveredAt || execution.stopDate);
  } else {
    watch.outcome = "failed-again";
    const reason = record && record.errorName ? `${record.errorName}: ${record.failureReason || ""}` : execution.error || execution.status;
    watch.detail = execution.status === "SUCCEEDED" ? "the run ended without delivering" : reason;
  }
  watch.endedAt = execution.stopDate;
}

function renderRedriveNotice(el, arn) {
  const watch = state.redrives.get(arn);
  clear(el);
  if (!watch) return;
  const texts = {
    running: `Redrive ${watch.count} started at ${fmtClock(watch.at).slice(0, 8)}: the run is resuming, following it until it ends…`,
    delivered: `Redrive ${watch.count} delivered the notification at ${watch.detail}.`,
    "failed-again": `Redrive ${watch.count} failed again: ${watch.detail}`,
    refused: `Redrive refused: ${watch.detail}`,
  };
  const dismiss = h("button", { class: "notice-close", type: "button", "aria-label": "Dismiss", id: "redrive-dismiss" }, "×");
  dismiss.addEventListener("click", () => {
    state.redrives.delete(arn);
    clear(el);
  });
  el.append(
    h(
      "div",
      { class: `notice notice-${watch.outcome}`, id: "redrive-status", role: "status", dataset: { state: watch.outcome } },
      h("span", {}, texts[watch.outcome]),
      watch.outcome === "running" ? null : dismiss,
    ),
  );
}

function confirmRedrive(data) {
  return new Promise((resolve) => {
    const execution = data.execution;
    const last = data.passes[data.passes.length - 1];
    const stoppedIn = last ? lastStateOfPass(data, last.number) : null;
    const host = data.record && data.record.targetHost;
    const dialog = h(
      "dialog",
      { class: "dialog", id: "redrive-dialog", "aria-labelledby": "redrive-dialog-title" },
      h("h2", { id: "redrive-dialog-title" }, `Redrive ${data.notificationId ?? execution.name}?`),
      h(
        "p",
        {},
        `This is redrive ${(execution.redriveCount ?? 0) + 1} of the run. It resumes ${stoppedIn ? `in ${stoppedIn}, ` : ""}where it stopped, and delivers the notification again${host ? ` to ${host}` : ""} under the same execution.`,
      ),
      h("p", { class: "muted small" }, "Fix the endpoint first: a redrive to a receiver that still fails fails again."),
    );
    const cancel = h("button", { class: "button", type: "button", id: "redrive-cancel" }, "Cancel");
    const confirm = h("button", { class: "button button-primary", type: "button", id: "redrive-confirm" }, "Redrive");
    const close = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    cancel.addEventListener("click", () => close(false));
    confirm.addEventListener("click", () => close(true));
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      close(false);
    });
    dialog.append(h("div", { class: "dialog-actions" }, cancel, confirm));
    document.body.append(dialog);
    dialog.showModal();
    confirm.focus();
  });
}

function lastStateOfPass(data, number) {
  const visits = data.timeline.filter((visit) => visit.pass === number);
  return visits.length ? visits[visits.length - 1].name : null;
}

function renderHeader(el, data, arn) {
  clear(el);
  const execution = data.execution;
  const actions = h("div", { class: "actions" });
  const watch = state.redrives.get(arn);
  if (data.redrive.allowed && !(watch && watch.outcome === "running")) {
    const button = h("button", { class: "button button-primary", id: "redrive-button", type: "button" }, "Redrive…");
    button.addEventListener("click", async () => {
      if (!(await confirmRedrive(data))) return;
      button.disabled = true;
      button.textContent = "Redriving…";
      try {
        const { data: started } = await api(`/api/executions/${encodeURIComponent(arn)}/redrive`, {
          method: "POST",
          headers: { "X-Notiflow-Console": "1" },
        });
        state.redrives.set(arn, { count: started.redriveCount, at: started.redrivenAt, outcome: "running" });
      } catch (error) {
        state.redrives.set(arn, { count: (execution.redriveCount ?? 0) + 1, at: new Date().toISOString(), outcome: "refused", detail: error.message });
      }
      state.reload();
    });
    actions.append(button);
  } else if (data.redrive.reason && execution.status !== "RUNNING" && execution.status !== "SUCCEEDED") {
    actions.append(h("span", { class: "muted small", id: "redrive-reason" }, `Cannot redrive: ${data.redrive.reason}`));
  }
  const refresh = h("button", { class: "button", type: "button", id: "refresh-button" }, "Refresh");
  refresh.addEventListener("click", () => state.reload());
  const updated = h("span", { class: "muted small", id: "last-updated", dataset: { updated: "" } }, "");
  actions.append(updated, refresh);
  const failedAgain = (execution.redriveCount ?? 0) > 0 && ["FAILED", "TIMED_OUT", "ABORTED"].includes(execution.status);
  append(
    el,
    h(
      "div",
      { class: "title-block" },
      h("h1", { class: "mono-title" }, data.notificationId ?? execution.name),
      h(
        "div",
        { class: "title-badges" },
        h("span", { class: "badge-label" }, "Run"),
        h("span", { id: "run-status" }, badge(execution.status, "run")),
        data.record ? h("span", { class: "badge-label" }, "Notification") : null,
        data.record ? h("span", { id: "record-status" }, badge(data.record.status, "record")) : null,
        execution.redriveCount ? h("span", { class: "pill", id: "redrive-count" }, `Redriven ×${execution.redriveCount}`) : null,
        failedAgain ? h("span", { class: "pill pill-bad", id: "failed-again" }, `Failed again after redrive ${execution.redriveCount}`) : null,
      ),
    ),
    actions,
  );
}

function field(label, value, attrs = {}) {
  const empty = value === null || value === undefined || value === "" || value === "—";
  return h("div", { class: "field" }, h("dt", {}, label), h("dd", empty ? {} : attrs, empty ? dash() : value));
}

function renderSummary(el, data) {
  clear(el);
  const execution = data.execution;
  const input = execution.input;
  append(
    el,
    h(
      "dl",
      { class: "fields fields-4" },
      field("Execution", execution.name, { class: "mono" }),
      field("Started", fmtDate(execution.startDate)),
      field(execution.status === "RUNNING" ? "Running for" : "Duration", fmtDuration(execution.durationSeconds)),
      field("Redrives", String(execution.redriveCount ?? 0)),
      field("Execution ARN", breakable(execution.executionArn), { class: "mono" }),
      field("Stopped", execution.status === "RUNNING" ? "still running" : fmtDate(execution.stopDate)),
      field("Last redrive", execution.redriveDate ? fmtDate(execution.redriveDate) : null, { id: "redrive-date" }),
      field("Error", execution.error ?? null, { class: "error-name" }),
      field("Cause", causeSummary(execution.cause), { class: "wrap" }),
    ),
    h("details", { class: "disclosure" }, h("summary", {}, "Execution input"), h("pre", { class: "code" }, pretty(input))),
    execution.output ? h("details", { class: "disclosure" }, h("summary", {}, "Execution output"), h("pre", { class: "code" }, pretty(execution.output))) : null,
    execution.cause ? h("details", { class: "disclosure" }, h("summary", {}, "Full cause"), h("pre", { class: "code" }, pretty(execution.cause))) : null,
  );
}

// Path through the layout points with vertical tangents, so edges leave and enter nodes straight.
function edgePath(points) {
  let d = `M ${points[0][0]} ${points[0][1]}`;
  for (let i = 1; i < points.length; i++) {
    const [x0, y0] = points[i - 1];
    const [x1, y1] = points[i];
    const mid = (y1 - y0) / 2;
    d += ` C ${x0} ${y0 + mid} ${x1} ${y1 - mid} ${x1} ${y1}`;
  }
  return d;
}

function traversedEdges(timeline) {
  const taken = new Set();
  for (let i = 1; i < timeline.length; i++) taken.add(`${timeline[i - 1].name}\u0000${timeline[i].name}`);
  return taken;
}

// A small label pinned to a node's left edge, above (negative y) or below it.
function mark(kind, text, y) {
  const width = Math.round(12 + text.length * 5.6);
  return svg(
    "g",
    { class: `node-mark ${kind}`, transform: `translate(-10 ${y})` },
    svg("rect", { x: 0, y: 0, width, height: 15, rx: 7.5 }),
    svg("text", { x: width / 2, y: 11 }, text),
  );
}

// The pass shown: the one the operator picked, else the current one (the last).
function shownPass(data) {
  const numbers = data.passes.map((p) => p.number);
  return numbers.includes(state.selectedPass) ? state.selectedPass : data.currentPass;
}

function renderPasses(el, data) {
  if (data.passes.length < 2) return null;
  const shown = shownPass(data);
  const list = h("div", { class: "passes", id: "passes", role: "group", "aria-label": "Passes of this run" });
  for (const run of data.passes) {
    const current = run.number === data.currentPass;
    const label = run.redrive ? `Redrive ${run.redrive}` : "First run";
    const ended = run.status === "RUNNING" ? "in progress" : humanize(run.status).toLowerCase();
    const button = h(
      "button",
      {
        type: "button",
        class: `pass pass-${String(run.status).toLowerCase()}${current ? " pass-current" : ""}${run.number === shown ? " pass-shown" : ""}`,
        "aria-pressed": run.number === shown ? "true" : "false",
        dataset: { pass: run.number, status: run.status, current: current ? "true" : "false" },
        title: `${label}: started ${fmtDate(run.started)}${run.ended ? `, ended ${fmtDate(run.ended)}` : ""}${run.resumedIn && run.redrive ? `, resumed in ${run.resumedIn}` : ""}`,
      },
      h("strong", {}, `Pass ${run.number}`),
      ` · ${label} · ${ended}`,
      current ? h("span", { class: "pass-tag" }, "current") : null,
    );
    button.addEventListener("click", () => {
      state.selectedPass = run.number;
      state.selectedState = null;
      renderGraph(el, data);
    });
    list.append(button);
  }
  return list;
}

function renderGraph(el, data) {
  clear(el);
  const graph = state.definition.graph;
  const passNumber = shownPass(data);
  const colours = data.passColours[String(passNumber)] || data.colours;
  const passVisits = data.timeline.filter((visit) => visit.pass === passNumber);
  const taken = traversedEdges(passVisits);
  const visitsByState = new Map();
  for (const visit of passVisits) {
    if (!visitsByState.has(visit.name)) visitsByState.set(visit.name, []);
    visitsByState.get(visit.name).push(visit);
  }
  // Failures of the other passes stay visible on the graph; each redrive marks the state it resumed in.
  const failedElsewhere = new Map();
  for (const visit of data.timeline) {
    if (visit.pass === passNumber || !["failed", "caught"].includes(visit.outcome)) continue;
    if (!failedElsewhere.has(visit.name)) failedElsewhere.set(visit.name, new Set());
    failedElsewhere.get(visit.name).add(visit.pass);
  }
  const resumedHere = new Map();
  for (const run of data.passes) {
    if (run.redrive && run.resumedIn) {
      if (!resumedHere.has(run.resumedIn)) resumedHere.set(run.resumedIn, []);
      resumedHere.get(run.resumedIn).push(run.redrive);
    }
  }
  const root = svg("svg", {
    class: "graph",
    id: "graph",
    viewBox: `0 0 ${graph.width} ${graph.height}`,
    width: graph.width,
    height: graph.height,
    role: "img",
    "aria-label": "State machine graph coloured by how this run went",
  });
  root.append(
    svg(
      "defs",
      {},
      ["plain", "taken"].map((kind) =>
        svg(
          "marker",
          { id: `arrow-${kind}`, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
          svg("path", { d: "M 0 1 L 9 5 L 0 9 z", class: `arrow arrow-${kind}` }),
        ),
      ),
    ),
  );
  const edgeLayer = svg("g", { class: "edges" });
  const labelLayer = svg("g", { class: "edge-labels" });
  for (const edge of graph.edges) {
    const wasTaken = taken.has(`${edge.source}\u0000${edge.target}`);
    const classes = ["edge", `edge-${edge.kind}`, wasTaken ? "edge-taken" : "", edge.back ? "edge-back" : ""].join(" ");
    const title = edge.kind === "catch" ? `Catch ${edge.label} → ${edge.target}` : `${edge.source} → ${edge.target}`;
    edgeLayer.append(
      svg(
        "path",
        {
          d: edgePath(edge.points),
          class: classes,
          "marker-end": `url(#arrow-${wasTaken ? "taken" : "plain"})`,
          dataset: { source: edge.source, target: edge.target, kind: edge.kind },
        },
        svg("title", {}, title),
      ),
    );
    if (edge.kind === "choice" || edge.kind === "default") {
      // Next to the arrow head, on the side the edge comes from, so sibling labels never overlap.
      const [xa, ya] = edge.points[edge.points.length - 2];
      const [xb, yb] = edge.points[edge.points.length - 1];
      const leftward = xb < xa - 1;
      labelLayer.append(
        svg(
          "text",
          { x: xb + (leftward ? -7 : 7), y: yb - 7, class: "edge-label", "text-anchor": leftward ? "end" : "start" },
          edge.label,
        ),
      );
    }
  }
  const nodeLayer = svg("g", { class: "nodes" });
  for (const node of graph.nodes) {
    const outcome = colours[node.name] || "not-reached";
    const visits = visitsByState.get(node.name) || [];
    const last = visits[visits.length - 1];
    const pill = ["Choice", "Succeed", "Fail"].includes(node.type);
    const tip = [`${node.name} (${node.type})`, OUTCOMES.find(([k]) => k === outcome)?.[1] ?? outcome];
    if (last && last.attempts > 1) tip.push(`${last.attempts} attempts`);
    if (visits.length > 1) tip.push(`entered ${visits.length} times`);
    const elsewhere = [...(failedElsewhere.get(node.name) || [])].sort((a, b) => a - b);
    const redrives = resumedHere.get(node.name) || [];
    if (elsewhere.length) tip.push(`failed in pass ${elsewhere.join(", ")}`);
    if (redrives.length) tip.push(`redrive ${redrives.join(", ")} resumed here`);
    const marks = {};
    if (elsewhere.length) marks.failedInPass = elsewhere.join(",");
    if (redrives.length) marks.redrive = redrives.join(",");
    const group = svg(
      "g",
      {
        class: `node outcome-${outcome}${state.selectedState === node.name ? " selected" : ""}${elsewhere.length ? " failed-elsewhere" : ""}`,
        dataset: { state: node.name, outcome, type: node.type, ...marks },
        transform: `translate(${node.x} ${node.y})`,
        tabindex: 0,
        role: "button",
        "aria-label": `${node.name}: ${tip[1]}`,
      },
      svg("title", {}, tip.join(" · ")),
      svg("rect", { width: node.width, height: node.height, rx: pill ? node.height / 2 : 7, class: "node-box" }),
      svg("text", { x: node.width / 2, y: node.height / 2 + 4.5, class: "node-label" }, node.name),
      last && last.retries > 0
        ? svg(
            "g",
            { class: "node-retries", transform: `translate(${node.width - 4} -6)` },
            svg("rect", { x: -22, y: 0, width: 26, height: 15, rx: 7.5 }),
            svg("text", { x: -9, y: 11 }, `×${last.attempts}`),
          )
        : null,
      elsewhere.length
        ? mark("node-mark-failed", `✕ pass ${elsewhere.join(", ")}`, -10)
        : null,
      redrives.length
        ? mark("node-mark-redrive", `↻ redrive ${redrives.join(", ")}`, node.height - 5)
        : null,
    );
    const select = () => {
      state.selectedState = state.selectedState === node.name ? null : node.name;
      renderGraph(el, data);
    };
    group.addEventListener("click", select);
    group.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        select();
      }
    });
    nodeLayer.append(group);
  }
  root.append(edgeLayer, labelLayer, nodeLayer);
  const legend = h(
    "ul",
    { class: "legend", id: "legend" },
    OUTCOMES.map(([key, label]) => h("li", {}, h("span", { class: `swatch outcome-${key}` }), label)),
    h("li", {}, h("span", { class: "line-sample line-catch" }), "Catch"),
    h("li", {}, h("span", { class: "mark-sample mark-failed" }, "✕"), "Failed in another pass"),
    h("li", {}, h("span", { class: "mark-sample mark-redrive" }, "↻"), "A redrive resumed here"),
  );
  append(
    el,
    h("div", { class: "card-head" }, h("h2", {}, "Graph"), h("span", { class: "muted small" }, "Click a state for its input, output and errors")),
    renderPasses(el, data),
    h("div", { class: "graph-scroll" }, root),
    legend,
    renderStateDetails(visitsByState),
  );
}

function renderStateDetails(visitsByState) {
  const name = state.selectedState;
  if (!name) return null;
  const visits = visitsByState.get(name) || [];
  const panel = h("div", { class: "state-details", id: "state-details" }, h("h3", {}, name));
  if (!visits.length) {
    panel.append(h("p", { class: "muted" }, "This run did not reach this state."));
    return panel;
  }
  visits.forEach((visit, index) => {
    const duration = visit.exited ? (new Date(visit.exited) - new Date(visit.entered)) / 1000 : null;
    append(
      panel,
      visits.length > 1 ? h("h4", {}, `Visit ${index + 1} of ${visits.length}`) : null,
      h(
        "dl",
        { class: "fields fields-4" },
        field("Outcome", badge(visit.outcome, "outcome")),
        field("Entered", fmtClock(visit.entered)),
        field("Duration", duration === null ? "—" : fmtDuration(duration)),
        field("Attempts", visit.attempts ? String(visit.attempts) : "—"),
      ),
      visit.errors.length ? renderVisitErrors(visit.errors) : null,
      h("details", { class: "disclosure" }, h("summary", {}, "Input"), h("pre", { class: "code" }, pretty(visit.input))),
      visit.output !== null ? h("details", { class: "disclosure" }, h("summary", {}, "Output"), h("pre", { class: "code" }, pretty(visit.output))) : null,
    );
  });
  return panel;
}

// Consecutive identical errors (a retried 503, say) collapse into one row with their attempt range.
function groupErrors(errors) {
  const groups = [];
  errors.forEach((error, index) => {
    const name = error.error || "Error";
    const summary = causeSummary(error.cause) ?? "";
    const last = groups[groups.length - 1];
    if (last && last.error === name && last.summary === summary) last.last = index + 1;
    else groups.push({ first: index + 1, last: index + 1, error: name, summary });
  });
  return groups;
}

function renderVisitErrors(errors) {
  const last = errors[errors.length - 1];
  return h(
    "div",
    { class: "error-box" },
    h("strong", {}, errors.length === 1 ? "Error" : `${errors.length} errors`),
    h(
      "table",
      { class: "error-list" },
      h(
        "tbody",
        {},
        groupErrors(errors).map((group) =>
          h(
            "tr",
            {},
            h("td", { class: "num nowrap" }, group.first === group.last ? group.first : `${group.first}–${group.last}`),
            h("td", { class: "mono" }, group.error),
            h("td", {}, group.summary),
          ),
        ),
      ),
    ),
    h("details", {}, h("summary", {}, "Last cause in full"), h("pre", { class: "code" }, pretty(last.cause))),
  );
}

function renderRecord(el, data) {
  clear(el);
  const record = data.record;
  append(el, h("div", { class: "card-head" }, h("h2", {}, "Notification record"), record ? badge(record.status, "record") : null));
  if (!record) {
    el.append(h("p", { class: "muted pad" }, "No record: this run has not claimed the notification (yet)."));
    return;
  }
  if (!data.recordOwned) {
    el.append(
      h("p", { class: "note" }, "This record belongs to another run of the same notification: ", h("a", { class: "link mono", href: executionHref(record.executionArn || "") }, (record.executionArn || "").split(":").pop())),
    );
  }
  const result = record.deliveryResult || {};
  append(
    el,
    h(
      "dl",
      { class: "fields fields-2" },
      field("Target host", record.targetHost, { class: "mono" }),
      field("Method", record.targetMethod),
      field("Event type", record.eventType),
      field("Correlation id", record.correlationId, { class: "mono" }),
      field("Created", fmtDate(record.createdAt)),
      field("Last updated", fmtDate(record.lastUpdatedAt)),
      field("Delivered", record.deliveredAt ? fmtDate(record.deliveredAt) : null),
      field("Attempts", record.attempts === undefined ? null : String(record.attempts)),
      record.redriveCount !== undefined ? field("Redrive count", String(record.redriveCount)) : null,
      record.errorName ? field("Error", record.errorName, { class: "error-name" }) : null,
      record.fastPathExecutionArn
        ? field("Express run", h("span", { id: "express-run", title: "The fast path's first attempt, before this Standard run" }, breakable(record.fastPathExecutionArn)), { class: "mono" })
        : null,
      record.executionArn && record.executionArn !== data.execution.executionArn && data.recordOwned
        ? field("Standard run", h("a", { class: "link mono", href: executionHref(record.executionArn), id: "standard-run" }, record.executionArn.split(":").pop()))
        : null,
      record.reconciledAt ? field("Closed by", `the reconciler, ${fmtDate(record.reconciledAt)}`, { id: "reconciled" }) : null,
    ),
    record.failureReason ? h("div", { class: "error-box", id: "failure-reason" }, h("strong", {}, "Failure reason"), h("p", {}, record.failureReason)) : null,
    h("h3", { class: "section-title" }, "Delivery result"),
    Object.keys(result).length
      ? h(
          "dl",
          { class: "fields fields-2", id: "delivery-result" },
          field("Outcome", result.success ? "Delivered" : "Not delivered", { class: result.success ? "ok" : "bad" }),
          field("Category", result.category),
          field("Status", result.statusCode ? `${result.statusCode} ${result.statusText || ""}`.trim() : null, { class: "mono" }),
          field("Response time", result.responseTime === undefined ? null : fmtMs(result.responseTime)),
          field("Retry eligible", result.retryEligible === undefined ? null : result.retryEligible ? "Yes" : "No"),
          field("At", fmtDate(result.timestamp)),
          result.errorDetails ? field("Details", result.errorDetails, { class: "wrap" }) : null,
        )
      : h("p", { class: "muted pad" }, (record.attemptLog || []).length ? "No final result yet: the notification is still being delivered." : "No delivery attempt yet."),
  );
  const log = record.attemptLog || [];
  el.append(h("h3", { class: "section-title" }, `Attempt log (${log.length})`));
  if (log.length) {
    el.append(
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "table table-compact", id: "attempt-log" },
          h("thead", {}, h("tr", {}, h("th", { class: "num" }, "#"), h("th", {}, "Time"), h("th", {}, "Category"), h("th", { class: "num" }, "Code"), h("th", { class: "num" }, "Took"), h("th", {}, "Details"))),
          h(
            "tbody",
            {},
            log.map((entry) =>
              h(
                "tr",
                {},
                h("td", { class: "num" }, entry.attempt ?? ""),
                h("td", { class: "nowrap mono" }, fmtClock(entry.timestamp)),
                h("td", {}, h("span", { class: `category category-${String(entry.category || "").toLowerCase()}` }, entry.category ?? "")),
                h("td", { class: "num mono" }, entry.statusCode ?? "—"),
                h("td", { class: "num nowrap" }, fmtMs(entry.responseTime)),
                h("td", { class: "wrap" }, entry.errorDetails ?? ""),
              ),
            ),
          ),
        ),
      ),
    );
  }
}

const DETAIL_ORDER = ["error", "cause", "name", "resourceType", "resource", "input", "parameters", "output", "timeoutInSeconds", "redriveCount", "roleArn"];
const HIDDEN_DETAILS = new Set(["inputDetails", "outputDetails", "region"]);

function eventTone(type) {
  if (/Failed|TimedOut|Aborted/.test(type)) return "bad";
  if (/Succeeded/.test(type) || type === "ExecutionRedriven") return "good";
  return "";
}

function renderEvents(el, data) {
  clear(el);
  const body = h("tbody", {});
  for (const event of data.events) {
    const expanded = state.expandedEvents.has(event.id);
    const toggle = h("button", { class: "toggle", type: "button", "aria-expanded": expanded ? "true" : "false", "aria-label": `Details of event ${event.id}` }, expanded ? "▾" : "▸");
    const row = h(
      "tr",
      { class: `event-row ${expanded ? "open" : ""}`, dataset: { eventId: event.id, type: event.type } },
      h("td", { class: "num" }, toggle, " ", event.id),
      h("td", { class: `event-type ${eventTone(event.type)}` }, event.type),
      h("td", { class: "mono" }, event.state ?? ""),
      h("td", { class: "nowrap mono" }, fmtClock(event.timestamp)),
      h("td", { class: "num nowrap" }, fmtMs(event.elapsedMs)),
    );
    row.addEventListener("click", () => {
      if (state.expandedEvents.has(event.id)) state.expandedEvents.delete(event.id);
      else state.expandedEvents.add(event.id);
      renderEvents(el, data);
    });
    body.append(row);
    if (expanded) {
      const keys = Object.keys(event.details).filter((k) => !HIDDEN_DETAILS.has(k));
      keys.sort((a, b) => (DETAIL_ORDER.indexOf(a) + 1 || 99) - (DETAIL_ORDER.indexOf(b) + 1 || 99));
      body.append(
        h(
          "tr",
          { class: "event-details" },
          h(
            "td",
            { colspan: 5 },
            keys.length
              ? h(
                  "dl",
                  { class: "event-fields" },
                  keys.map((key) => [h("dt", {}, key), h("dd", {}, h("pre", { class: "code" }, pretty(event.details[key])))]),
                )
              : h("span", { class: "muted" }, "No details."),
          ),
        ),
      );
    }
  }
  append(
    el,
    h("div", { class: "card-head" }, h("h2", {}, "Event history"), h("span", { class: "muted small" }, `${data.events.length} events · click a row for input, output, error and cause`)),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "table", id: "event-table" },
        h("thead", {}, h("tr", {}, h("th", { class: "num" }, "ID"), h("th", {}, "Type"), h("th", {}, "Step"), h("th", {}, "Timestamp"), h("th", { class: "num" }, "Elapsed"))),
        body,
      ),
    ),
  );
}

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", route);
