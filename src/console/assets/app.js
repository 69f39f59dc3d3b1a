// The ops console: sign-in, fragment routes, pages that refresh in place every 2 s.
import {
  api, el, errorText, fill, forgetToken, localInputValue, orDash, setText, storeToken,
  storedToken, svg, time,
} from "./lib.js";

const POLL_MS = 2000;
const STATUSES = ["pending", "retrying", "success", "failed", "cancelled"];
const FINAL = ["success", "failed", "cancelled"];
const DELIVERY_FILTERS = ["status", "event_type", "tenant_id", "webhook_id", "event_id", "since", "until"];

const root = document.getElementById("app");
let me = null; // the whoami answer once signed in
let page = null; // {refresh(), key}
let timer = null;
let noticeNode = null;
let mainNode = null;

// ---------- sign-in ----------

function showLogin(error) {
  stopPolling();
  me = null;
  page = null;
  const input = el("input", {
    testid: "login-token", id: "login-token", type: "password", autocomplete: "off",
    placeholder: "admin token or bk_… key",
  });
  const form = el("form", { testid: "login-form", class: "login" },
    el("h1", {}, "Beema Webhooks"),
    el("label", { for: "login-token" }, "Token"),
    input,
    el("button", { testid: "login-submit", type: "submit" }, "Sign in"),
    error ? el("p", { testid: "login-error", class: "error", role: "alert" }, error) : null,
    el("p", { class: "hint" }, "The admin token or a tenant admin key. It is kept for this tab only."),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    let res;
    try {
      res = await api("/api/whoami", { token });
    } catch {
      showLogin("The server did not answer.");
      return;
    }
    if (res.status === 200 && res.body && res.body.role === "admin") {
      storeToken(token);
      me = res.body;
      showApp();
    } else {
      showLogin(res.status === 403 ? "This key may not sign in (publisher key)." : "Wrong token.");
    }
  });
  fill(root, form);
  input.focus();
}

async function boot() {
  const token = storedToken();
  if (token === null) return showLogin();
  try {
    const res = await api("/api/whoami");
    if (res.status === 200) {
      me = res.body;
      return showApp();
    }
  } catch {
    // fall through to the form
  }
  forgetToken();
  showLogin();
}

// ---------- frame and routing ----------

function showApp() {
  const nav = el("nav", { class: "nav", "aria-label": "Main" },
    el("a", { testid: "nav-overview", href: "#/overview" }, "Overview"),
    el("a", { testid: "nav-webhooks", href: "#/webhooks" }, "Webhooks"),
    el("a", { testid: "nav-deliveries", href: "#/deliveries" }, "Deliveries"),
  );
  const who = el("span", { class: "who" }, "Signed in as ",
    el("strong", { testid: "whoami" }, me.tenant_id ? me.tenant_id : "admin"));
  const logout = el("button", { testid: "logout-button", type: "button", class: "link" }, "Sign out");
  logout.addEventListener("click", () => {
    forgetToken();
    history.replaceState(null, "", "#/overview");
    showLogin();
  });
  noticeNode = el("div", { testid: "notice", class: "notice", role: "status", "aria-live": "polite" });
  mainNode = el("main", { id: "main" });
  fill(root, el("header", { class: "top" }, el("span", { class: "brand" }, "Beema Webhooks"), nav, who, logout),
    noticeNode, mainNode);
  route();
}

function notice(text, isError = false) {
  if (!noticeNode) return;
  noticeNode.classList.toggle("error", isError);
  setText(noticeNode, text);
}

function parseHash() {
  const h = location.hash.replace(/^#/, "") || "/overview";
  const [path, query = ""] = h.split("?");
  return { parts: path.split("/").filter(Boolean), params: new URLSearchParams(query) };
}

function route() {
  if (!me) return;
  stopPolling();
  const { parts, params } = parseHash();
  for (const a of root.querySelectorAll("nav a")) {
    a.classList.toggle("active", a.getAttribute("href") === `#/${parts[0] || "overview"}`);
  }
  if (parts[0] === "webhooks" && parts[1]) page = webhookPage(parts[1]);
  else if (parts[0] === "webhooks") page = webhooksPage();
  else if (parts[0] === "deliveries" && parts[1]) page = deliveryPage(decodeURIComponent(parts[1]));
  else if (parts[0] === "deliveries") page = deliveriesPage(params);
  else page = overviewPage();
  fill(mainNode, page.node);
  poll();
}

function stopPolling() {
  if (timer) clearTimeout(timer);
  timer = null;
}

/** Refreshes the current page, then again POLL_MS after it finished (never overlapping). */
async function poll() {
  const current = page;
  try {
    const keepGoing = await current.refresh();
    if (current !== page) return;
    if (keepGoing === false) return;
  } catch (e) {
    if (current !== page) return;
    notice(`Refresh failed: ${e.message || e}`, true);
  }
  timer = setTimeout(poll, POLL_MS);
}

function pageError(node, res) {
  const text = res.status === 403 ? "This belongs to another tenant." :
    res.status === 404 ? "Not found." : errorText(res);
  fill(node, el("p", { testid: "page-error", class: "error", role: "alert" }, text));
  return false;
}

function go(hash) {
  location.hash = hash;
}

// ---------- shared pieces ----------

function circuitBadge(state) {
  const s = state || "closed";
  return el("span", { testid: "circuit-state", class: `badge circuit-${s}`, data: { state: s } }, s.replace("_", "-"));
}

function statusBadge(status) {
  return el("span", { testid: "delivery-status", class: `badge st-${status}` }, status);
}

function enabledBadge(enabled) {
  return el("span", { testid: "webhook-enabled", class: `badge ${enabled ? "on" : "off"}`, data: { enabled: String(enabled) } },
    enabled ? "enabled" : "disabled");
}

function table(headers, body) {
  return el("div", { class: "table-wrap" },
    el("table", {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))), body));
}

function rowLink(tr, hash) {
  tr.tabIndex = 0;
  tr.classList.add("clickable");
  tr.addEventListener("click", (ev) => {
    if (ev.target.closest("a,button,input,select")) return;
    go(hash);
  });
  tr.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") go(hash);
  });
  return tr;
}

function deliveryRow(d, showTenant = true) {
  const tr = el("tr", { testid: "delivery-row", data: { deliveryId: d.delivery_id, status: d.status } },
    el("td", {}, statusBadge(d.status)),
    el("td", {}, el("a", { href: `#/deliveries/${encodeURIComponent(d.delivery_id)}`, testid: "delivery-event-type" }, d.event_type)),
    el("td", {}, el("span", { testid: "delivery-webhook" }, String(d.webhook_id))),
    showTenant ? el("td", {}, el("span", { testid: "delivery-tenant" }, d.tenant_id)) : null,
    el("td", { class: "num" }, el("span", { testid: "delivery-attempts" }, String(d.attempt_number))),
    el("td", { class: "num" }, el("span", { testid: "delivery-status-code" }, orDash(d.status_code))),
    el("td", {}, time(d.created_at, "delivery-created")),
  );
  return rowLink(tr, `#/deliveries/${encodeURIComponent(d.delivery_id)}`);
}

const DELIVERY_HEADERS = (showTenant) =>
  ["Status", "Event type", "Webhook", showTenant ? "Tenant" : null, "Attempts", "Code", "Created"].filter(Boolean);

/** Asks in the page; resolves true on OK. */
function confirmDialog(text) {
  return new Promise((resolve) => {
    const ok = el("button", { testid: "confirm-ok", type: "button" }, "OK");
    const cancel = el("button", { testid: "confirm-cancel", type: "button", class: "secondary" }, "Cancel");
    const box = el("div", { class: "overlay" },
      el("div", { testid: "confirm-dialog", class: "dialog", role: "dialog", "aria-modal": "true", "aria-label": "Confirm" },
        el("p", {}, text), el("div", { class: "actions" }, cancel, ok)));
    const done = (v) => {
      box.remove();
      document.removeEventListener("keydown", onKey);
      resolve(v);
    };
    const onKey = (ev) => {
      if (ev.key === "Escape") done(false);
    };
    ok.addEventListener("click", () => done(true));
    cancel.addEventListener("click", () => done(false));
    document.addEventListener("keydown", onKey);
    document.body.append(box);
    ok.focus();
  });
}

/** Webhooks with their health, for lists: [{w, h}]. */
async function webhooksWithHealth() {
  const [list, health] = await Promise.all([api("/api/webhooks?limit=1000"), api("/api/health/webhooks")]);
  if (list.status !== 200) throw new Error(errorText(list));
  const byId = new Map();
  if (health.status === 200) for (const h of health.body.webhooks) byId.set(h.webhook_id, h);
  return list.body.webhooks.map((w) => ({ w, h: byId.get(w.webhook_id) }));
}

// ---------- overview ----------

const STAT_FIELDS = [
  ["stat-total", "Deliveries"], ["stat-success", "Succeeded"], ["stat-failed", "Failed"],
  ["stat-pending", "Waiting"], ["stat-success-rate", "Success rate %"],
  ["stat-latency-p50", "p50 ms"], ["stat-latency-p99", "p99 ms"],
];

function overviewPage() {
  const stats = {};
  const cards = STAT_FIELDS.map(([id, label]) => {
    stats[id] = el("span", { testid: id, class: "value" }, "—");
    return el("div", { class: "card" }, stats[id], el("span", { class: "label" }, label));
  });
  const chart = svg("svg", { viewBox: "0 0 600 160", role: "img", "aria-label": "Attempts and latency per minute", preserveAspectRatio: "none" });
  chart.dataset.testid = "overview-chart";
  const rows = el("tbody");
  const node = el("section", { testid: "page-overview" },
    el("h1", {}, "Last hour"),
    el("div", { class: "cards" }, cards),
    el("div", { class: "chart" }, chart,
      el("p", { class: "legend" }, el("span", { class: "k ok" }, "ok"), el("span", { class: "k failed" }, "failed"),
        el("span", { class: "k p50" }, "p50"), el("span", { class: "k p99" }, "p99"))),
    el("h2", {}, "Webhooks"),
    table(["Webhook", "Circuit", "Tenant"], rows));
  const order = { open: 0, half_open: 1 };
  return {
    node,
    async refresh() {
      const res = await api("/api/stats?window=1h");
      if (res.status !== 200) throw new Error(errorText(res));
      const s = res.body;
      setText(stats["stat-total"], s.deliveries.total);
      setText(stats["stat-success"], s.deliveries.success);
      setText(stats["stat-failed"], s.deliveries.failed);
      setText(stats["stat-pending"], s.deliveries.pending + s.deliveries.retrying);
      setText(stats["stat-success-rate"], s.success_rate === null ? "—" : (s.success_rate * 100).toFixed(1));
      setText(stats["stat-latency-p50"], orDash(s.latency_ms.p50));
      setText(stats["stat-latency-p99"], orDash(s.latency_ms.p99));
      drawChart(chart, s.buckets);
      const list = await webhooksWithHealth();
      list.sort((a, b) => {
        const sa = order[a.h ? a.h.circuit.state : "closed"] ?? 2;
        const sb = order[b.h ? b.h.circuit.state : "closed"] ?? 2;
        return sa - sb || a.w.webhook_id - b.w.webhook_id;
      });
      fill(rows, list.map(({ w, h }) => rowLink(
        el("tr", { testid: "overview-webhook-row", data: { webhookId: String(w.webhook_id) } },
          el("td", {}, el("a", { href: `#/webhooks/${w.webhook_id}`, testid: "webhook-name" }, w.webhook_name)),
          el("td", {}, circuitBadge(h && h.circuit.state)),
          el("td", {}, w.tenant_id)),
        `#/webhooks/${w.webhook_id}`)));
      if (!list.length) rows.append(el("tr", {}, el("td", { colspan: 3 }, "No webhooks yet.")));
    },
  };
}

function drawChart(chart, buckets) {
  const W = 600, H = 160, n = buckets.length || 60, bw = W / n;
  const maxA = Math.max(1, ...buckets.map((b) => b.attempts));
  const maxL = Math.max(1, ...buckets.map((b) => b.latency_ms.p99 || 0));
  const parts = [svg("line", { x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5, class: "axis" })];
  buckets.forEach((b, i) => {
    const hOk = (b.ok / maxA) * (H - 10), hFail = (b.failed / maxA) * (H - 10);
    const title = svg("title");
    title.textContent = `${new Date(b.start).toLocaleTimeString()}: ${b.ok} ok, ${b.failed} failed, p50 ${orDash(b.latency_ms.p50)} ms, p99 ${orDash(b.latency_ms.p99)} ms`;
    const g = svg("g");
    g.append(title,
      svg("rect", { x: i * bw + 1, y: H - hOk, width: bw - 2, height: hOk, class: "bar-ok" }),
      svg("rect", { x: i * bw + 1, y: H - hOk - hFail, width: bw - 2, height: hFail, class: "bar-failed" }));
    parts.push(g);
  });
  for (const [key, cls] of [["p50", "line-p50"], ["p99", "line-p99"]]) {
    const pts = buckets.map((b, i) => b.latency_ms[key] === null ? null :
      `${(i + 0.5) * bw},${H - (b.latency_ms[key] / maxL) * (H - 10)}`).filter(Boolean);
    if (pts.length) parts.push(svg("polyline", { points: pts.join(" "), class: cls }));
  }
  chart.replaceChildren(...parts);
}

// ---------- webhooks ----------

function webhooksPage() {
  const filter = el("input", { testid: "webhook-filter", type: "search", placeholder: "Filter by name, tenant, event type, URL", "aria-label": "Filter webhooks" });
  const rows = el("tbody");
  let last = [];
  const render = () => {
    const q = filter.value.trim().toLowerCase();
    const shown = last.filter(({ w }) => !q || [w.webhook_name, w.tenant_id, w.event_type, w.url]
      .some((f) => f.toLowerCase().includes(q)));
    fill(rows, shown.map(({ w, h }) => rowLink(
      el("tr", { testid: "webhook-row", data: { webhookId: String(w.webhook_id) } },
        el("td", {}, el("a", { href: `#/webhooks/${w.webhook_id}`, testid: "webhook-name" }, w.webhook_name)),
        el("td", {}, el("span", { testid: "webhook-tenant" }, w.tenant_id)),
        el("td", {}, el("span", { testid: "webhook-event-type" }, w.event_type)),
        el("td", { class: "url" }, el("span", { testid: "webhook-url" }, w.url)),
        el("td", {}, enabledBadge(w.enabled)),
        el("td", {}, circuitBadge(h && h.circuit.state)),
        el("td", { class: "num" }, el("span", { testid: "queue-depth" }, h ? String(h.queue.pending + h.queue.in_flight) : "0")),
        el("td", {}, time(h && h.last_success_at, "last-success")),
        el("td", {}, time(h && h.last_failure_at, "last-failure"))),
      `#/webhooks/${w.webhook_id}`)));
    if (!shown.length) rows.append(el("tr", {}, el("td", { colspan: 9 }, last.length ? "No webhook matches." : "No webhooks yet.")));
  };
  filter.addEventListener("input", render);
  const node = el("section", { testid: "page-webhooks" }, el("h1", {}, "Webhooks"),
    el("div", { class: "filters" }, filter),
    table(["Name", "Tenant", "Event type", "URL", "Enabled", "Circuit", "Queue", "Last success", "Last failure"], rows));
  return {
    node,
    async refresh() {
      last = await webhooksWithHealth();
      render();
    },
  };
}

// ---------- one webhook ----------

function webhookPage(id) {
  const body = el("div", {}, el("p", { class: "loading" }, "Loading…"));
  const node = el("section", { testid: "page-webhook", data: { webhookId: id } }, body);
  let built = null;
  let current = null;
  const build = () => {
    const settings = el("dl", { testid: "webhook-settings", class: "settings" });
    const health = {
      circuit: el("span"), failures: el("span", { testid: "consecutive-failures" }),
      queue: el("span", { testid: "queue-depth" }), error: el("span", { testid: "last-error" }),
      enabled: el("span"),
    };
    const title = el("h1");
    const toggle = el("button", { testid: "toggle-enabled-button", type: "button" }, "Disable");
    const rotate = el("button", { testid: "rotate-secret-button", type: "button", class: "secondary" }, "Rotate secret");
    const test = el("button", { testid: "test-send-button", type: "button", class: "secondary" }, "Send test");
    const newSecret = el("div", { class: "new-secret" });
    const since = el("input", { testid: "bulk-retry-since", id: "bulk-retry-since", type: "datetime-local", value: localInputValue(new Date(Date.now() - 3600_000)) });
    const bulk = el("button", { testid: "bulk-retry-button", type: "button" }, "Retry all failed since");
    const bulkResult = el("span", { testid: "bulk-retry-result", class: "result" });
    const rows = el("tbody");
    toggle.addEventListener("click", async () => {
      const want = !current.enabled;
      const res = await api(`/api/webhooks/${id}`, { method: "PATCH", body: { enabled: want } });
      if (res.status === 200) {
        notice(want ? "Webhook enabled." : "Webhook disabled.");
        await refreshNow();
      } else notice(`Could not change it: ${errorText(res)}`, true);
    });
    rotate.addEventListener("click", async () => {
      if (!(await confirmDialog("Rotate the secret? The old one keeps signing for 24 hours."))) return;
      const res = await api(`/api/webhooks/${id}/rotate-secret`, { method: "POST", body: {} });
      if (res.status === 200) {
        fill(newSecret, el("p", {}, "New secret (shown once):"), el("code", { testid: "new-secret" }, res.body.secret));
        notice("Secret rotated.");
      } else notice(`Rotation failed: ${errorText(res)}`, true);
    });
    test.addEventListener("click", async () => {
      const res = await api(`/api/webhooks/${id}/test`, { method: "POST", body: {} });
      if (res.status === 202) notice(`Test event sent (delivery ${res.body.delivery_id}).`);
      else notice(`Test send failed: ${errorText(res)}`, true);
    });
    bulk.addEventListener("click", async () => {
      const at = new Date(since.value);
      if (Number.isNaN(at.getTime())) return notice("Pick a start time first.", true);
      if (!(await confirmDialog(`Send again every failed delivery since ${at.toLocaleString()}?`))) return;
      const res = await api(`/api/webhooks/${id}/recover`, { method: "POST", body: { since: at.toISOString() } });
      if (res.status === 202) {
        setText(bulkResult, res.body.recovered);
        notice(`${res.body.recovered} deliveries sent again.`);
        await refreshNow();
      } else notice(`Retry failed: ${errorText(res)}`, true);
    });
    fill(body,
      title,
      el("div", { class: "grid2" },
        el("div", { class: "panel" }, el("h2", {}, "Settings"), settings),
        el("div", { class: "panel" }, el("h2", {}, "Health"),
          el("dl", { class: "settings" },
            el("dt", {}, "Circuit"), el("dd", {}, health.circuit),
            el("dt", {}, "Consecutive failures"), el("dd", {}, health.failures),
            el("dt", {}, "Queue"), el("dd", {}, health.queue),
            el("dt", {}, "Last error"), el("dd", {}, health.error),
            el("dt", {}, "State"), el("dd", {}, health.enabled)),
          el("div", { class: "actions" }, toggle, rotate, test), newSecret,
          el("div", { class: "bulk" }, el("label", { for: "bulk-retry-since" }, "Failed since"), since, bulk,
            el("span", {}, "Sent again: "), bulkResult))),
      el("h2", {}, "Recent deliveries"),
      table(DELIVERY_HEADERS(!me.tenant_id), rows));
    return { settings, health, title, toggle, rows };
  };
  const render = (w, h, deliveries) => {
    current = w;
    built ||= build();
    node.dataset.webhookId = String(w.webhook_id);
    setText(built.title, w.webhook_name);
    const fields = [
      ["ID", w.webhook_id], ["Name", w.webhook_name], ["Tenant", w.tenant_id], ["Event type", w.event_type],
      ["URL", w.url], ["Secret", w.secret], ["Headers", Object.keys(w.headers).length ? Object.entries(w.headers).map(([k, v]) => `${k}: ${v}`).join("\n") : "—"],
      ["Retries", `${w.retry_config.maxAttempts} attempts, backoff ${w.retry_config.backoffMs} ms`],
      ["Rate limit", w.rate_limit ? `${w.rate_limit.perSecond}/s, burst ${w.rate_limit.burst}` : "unlimited"],
      ["Circuit breaker", `${w.circuit_breaker.failureThreshold} failures, cooldown ${w.circuit_breaker.cooldownMs} ms`],
      ["Timeout", `${w.timeout_ms} ms`], ["Ordered", w.ordered ? "yes" : "no"],
      ["Disabled because", orDash(w.disabled_reason)], ["Created", time(w.created_at)],
      ["Created by", orDash(w.created_by)], ["Updated", time(w.updated_at)], ["Updated by", orDash(w.updated_by)],
    ];
    fill(built.settings, fields.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v instanceof Node ? v : String(v))]));
    fill(built.health.circuit, circuitBadge(h && h.circuit.state));
    setText(built.health.failures, h ? h.circuit.consecutive_failures : 0);
    setText(built.health.queue, h ? h.queue.pending + h.queue.in_flight : 0);
    setText(built.health.error, orDash(h && h.last_error));
    fill(built.health.enabled, enabledBadge(w.enabled));
    setText(built.toggle, w.enabled ? "Disable" : "Enable");
    fill(built.rows, deliveries.map((d) => deliveryRow(d, !me.tenant_id)));
    if (!deliveries.length) built.rows.append(el("tr", {}, el("td", { colspan: 7 }, "No deliveries yet.")));
  };
  const refreshNow = async () => {
    const res = await api(`/api/webhooks/${encodeURIComponent(id)}`);
    if (res.status !== 200) {
      built = null;
      return pageError(body, res);
    }
    const [h, d] = await Promise.all([
      api(`/api/webhooks/${id}/health`),
      api(`/api/webhooks/deliveries?webhook_id=${id}&limit=20`),
    ]);
    render(res.body, h.status === 200 ? h.body : null, d.status === 200 ? d.body.deliveries : []);
    return true;
  };
  return { node, refresh: refreshNow };
}

// ---------- deliveries ----------

function deliveriesPage(params) {
  const admin = !me.tenant_id;
  const inputs = {};
  const status = el("select", { testid: "filter-status", "aria-label": "Status" },
    el("option", { value: "" }, "any status"), STATUSES.map((s) => el("option", { value: s }, s)));
  inputs.status = status;
  const text = (key, testid, label) => {
    inputs[key] = el("input", { testid, type: "text", placeholder: label, "aria-label": label });
    return inputs[key];
  };
  const fields = [
    status,
    text("event_type", "filter-event-type", "event type"),
    admin ? text("tenant_id", "filter-tenant", "tenant") : null,
    text("webhook_id", "filter-webhook", "webhook id"),
    text("event_id", "filter-event-id", "event id"),
    text("since", "filter-since", "since (RFC 3339)"),
    text("until", "filter-until", "until (RFC 3339)"),
  ];
  for (const key of DELIVERY_FILTERS) if (inputs[key] && params.get(key)) inputs[key].value = params.get(key);
  const rows = el("tbody");
  const empty = el("p", { class: "empty" });
  const prev = el("button", { testid: "page-prev", type: "button", class: "secondary" }, "← Newer");
  const next = el("button", { testid: "page-next", type: "button", class: "secondary" }, "Older →");
  const cursors = [];
  let before = null;
  let nextBefore = null;
  const node = el("section", { testid: "page-deliveries" }, el("h1", {}, "Deliveries"),
    el("form", { class: "filters", role: "search" }, fields, el("button", { type: "submit", class: "secondary" }, "Apply")),
    table(DELIVERY_HEADERS(admin), rows), empty,
    el("div", { class: "pager" }, prev, next));
  const applied = () => {
    const q = new URLSearchParams();
    for (const key of DELIVERY_FILTERS) {
      const v = inputs[key] && inputs[key].value.trim();
      if (v) q.set(key, v);
    }
    return q;
  };
  // Checked here so that a typo shows in the notice instead of a refused call.
  const valid = () => {
    for (const key of ["since", "until"]) {
      const v = inputs[key].value.trim();
      if (!v) continue;
      const d = new Date(v);
      if (Number.isNaN(d.getTime())) return `${key}: not a time`;
      inputs[key].value = d.toISOString();
    }
    const wid = inputs.webhook_id.value.trim();
    if (wid && !/^[1-9][0-9]{0,17}$/.test(wid)) return "webhook: a webhook id is a number";
    const tenant = inputs.tenant_id && inputs.tenant_id.value.trim();
    if (tenant && !/^[A-Za-z0-9_.:-]{1,128}$/.test(tenant)) return "tenant: letters, digits and _ . : - only";
    return null;
  };
  const apply = () => {
    const problem = valid();
    if (problem) {
      notice(problem, true);
      return;
    }
    notice("");
    history.replaceState(null, "", `#/deliveries${applied().toString() ? `?${applied()}` : ""}`);
    cursors.length = 0;
    before = null;
    refresh();
  };
  node.querySelector("form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    apply();
  });
  for (const input of Object.values(inputs)) input.addEventListener("change", apply);
  next.addEventListener("click", () => {
    if (!nextBefore) return;
    cursors.push(before);
    before = nextBefore;
    refresh();
  });
  prev.addEventListener("click", () => {
    if (!cursors.length) return;
    before = cursors.pop();
    refresh();
  });
  const refresh = async () => {
    if (valid()) return true;
    const q = applied();
    q.set("limit", "50");
    if (before) q.set("before", before);
    const res = await api(`/api/webhooks/deliveries?${q}`);
    if (res.status !== 200) {
      fill(rows);
      fill(empty, el("span", { class: "error" }, errorText(res)));
      notice(`Filter refused: ${errorText(res)}`, true);
      return true;
    }
    const list = res.body.deliveries;
    nextBefore = res.body.next_before;
    fill(rows, list.map((d) => deliveryRow(d, admin)));
    fill(empty, list.length ? null : el("span", { testid: "deliveries-empty" }, "No deliveries match."));
    prev.disabled = !cursors.length;
    next.disabled = !nextBefore;
    return true;
  };
  return { node, refresh };
}

// ---------- one delivery ----------

function deliveryPage(id) {
  const body = el("div", {}, el("p", { class: "loading" }, "Loading…"));
  const node = el("section", { testid: "page-delivery", data: { deliveryId: id, status: "" } }, body);
  let built = null;
  const build = () => {
    const status = el("span");
    const meta = el("dl", { class: "settings" });
    const next = el("p", { class: "next" });
    const payload = el("pre", { testid: "delivery-payload", class: "payload", tabindex: "0" });
    const rows = el("tbody");
    const retry = el("button", { testid: "retry-button", type: "button" }, "Retry now");
    retry.addEventListener("click", async () => {
      const res = await api(`/api/webhooks/deliveries/${encodeURIComponent(id)}/retry`, { method: "POST" });
      if (res.status === 202) {
        notice("Sent again.");
        await refresh();
      } else notice(`Retry refused: ${errorText(res)}`, true);
    });
    fill(body, el("h1", {}, "Delivery ", el("code", {}, id)),
      el("div", { class: "actions" }, status, retry), next, meta,
      el("h2", {}, "Payload"), payload,
      el("h2", {}, "Attempts"),
      table(["#", "Code", "Duration ms", "Response", "Error", "Time"], rows));
    return { status, meta, next, payload, rows, retry };
  };
  const refresh = async () => {
    const res = await api(`/api/webhooks/deliveries/${encodeURIComponent(id)}`);
    if (res.status !== 200) {
      built = null;
      return pageError(body, res);
    }
    const d = res.body;
    built ||= build();
    node.dataset.status = d.status;
    fill(built.status, statusBadge(d.status));
    fill(built.next, d.status === "retrying" && d.next_attempt_at ? ["Next attempt: ", time(d.next_attempt_at, "next-attempt")] : null);
    const meta = [["Webhook", el("a", { href: `#/webhooks/${d.webhook_id}` }, String(d.webhook_id))],
      ["Tenant", d.tenant_id], ["Event type", d.event_type], ["Event id", d.event_id],
      ["Attempts", String(d.attempt_number)], ["Created", time(d.created_at)], ["Delivered", time(d.delivered_at)]];
    fill(built.meta, meta.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    setText(built.payload, d.payload === undefined ? "—" : JSON.stringify(d.payload, null, 2));
    fill(built.rows, (d.attempts || []).map((a) => el("tr", { testid: "attempt-row", data: { statusCode: a.status_code === null ? "" : String(a.status_code) } },
      el("td", { class: "num" }, el("span", { testid: "attempt-number" }, String(a.attempt_number))),
      el("td", { class: "num" }, el("span", { testid: "attempt-status-code" }, orDash(a.status_code))),
      el("td", { class: "num" }, el("span", { testid: "attempt-duration" }, String(a.duration_ms))),
      el("td", {}, el("pre", { testid: "attempt-response", class: "cell" }, orDash(a.response_body))),
      el("td", {}, el("span", { testid: "attempt-error" }, orDash(a.error_message))),
      el("td", {}, time(a.attempted_at, "attempt-time")))));
    built.retry.disabled = !FINAL.includes(d.status);
    return true;
  };
  return { node, refresh };
}

window.addEventListener("hashchange", route);
boot();
