// The status board: reads /api/v1/status every few seconds and draws it. Every value from the
// agent is untrusted text (commit messages, names, errors): the DOM is built with textContent and
// attributes only, never innerHTML, and the page's CSP allows no other script.
"use strict";

const POLL_MS = 3000;
const STATES = {
  running: "running",
  replaced: "replaced",
  failed: "failed",
  "rolled-back": "rolled back",
  waiting: "waiting",
  pending: "pending",
};
const HELP = {
  running: "this change runs there now",
  replaced: "applied once, since replaced by a newer change to this environment",
  failed: "its apply or its rollout failed",
  "rolled-back": "rollback --now put an older commit back",
  waiting: "waiting for an approval (manual environment)",
  pending: "the next pass applies it",
};

const page = {
  data: null,
  text: "",
  fetchedAt: 0,
  token: sessionStorage.getItem("gitops-agent-token") || "",
  selected: null, // {env, sha} of the cell whose detail is open
  health: new Map(), // environment -> its objects' health, once asked for
  openDrift: new Set(), // environments whose drift is unfolded
  timer: 0,
  polling: false,
};

// --- DOM helpers: text only ---------------------------------------------------------------------

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "on") for (const [event, fn] of Object.entries(value)) node.addEventListener(event, fn);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function safeUrl(url) {
  return typeof url === "string" && /^https?:\/\//.test(url) ? url : "";
}

function link(url, text, label) {
  const href = safeUrl(url);
  if (!href) return el("span", { text });
  return el("a", { href, text, rel: "noopener noreferrer", target: "_blank", "aria-label": label });
}

function short(sha) {
  return (sha || "").slice(0, 7);
}

function ago(iso) {
  const then = Date.parse(iso || "");
  if (Number.isNaN(then)) return "";
  const s = Math.max(0, Math.round((Date.now() - then) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

function when(iso) {
  return el("time", { datetime: iso, title: iso, text: ago(iso) });
}

function pill(kind, text) {
  return el("span", { class: `pill pill-${kind}`, text });
}

// --- fetching -------------------------------------------------------------------------------------

function headers() {
  return page.token ? { Authorization: `Bearer ${page.token}` } : {};
}

async function poll() {
  clearTimeout(page.timer);
  if (page.polling) return; // one request at a time; the one in flight sets the next timer
  page.polling = true;
  try {
    const answer = await fetch("/api/v1/status", { headers: headers(), cache: "no-store" });
    if (answer.status === 401) {
      askForToken(); // polling resumes once a token is given
      return;
    }
    if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
    const data = await answer.json();
    page.fetchedAt = Date.now();
    setLive(true);
    // drawn again only when something changed (not its build time): open parts and focus stay put
    const { generated_at: _, ...rest } = data;
    const text = JSON.stringify(rest);
    if (text !== page.text) {
      page.text = text;
      page.data = data;
      render();
    }
  } catch (error) {
    setLive(false, String(error.message || error));
  } finally {
    page.polling = false;
  }
  if (document.getElementById("token-form").hidden) page.timer = setTimeout(poll, POLL_MS);
}

function askForToken() {
  const form = document.getElementById("token-form");
  form.hidden = false;
  document.getElementById("token").focus();
  setLive(false, "needs the status token");
}

function setLive(up, why) {
  document.getElementById("live-dot").className = up ? "dot up" : "dot down";
  document.getElementById("updated").textContent = up
    ? `live · updated ${new Date(page.fetchedAt).toLocaleTimeString()}`
    : `not updating: ${why}`;
}

async function loadHealth(name) {
  page.health.set(name, { loading: true });
  renderEnvironments();
  try {
    const path = `/api/v1/environments/${encodeURIComponent(name)}/health`;
    const answer = await fetch(path, { headers: headers(), cache: "no-store" });
    page.health.set(name, answer.ok ? await answer.json() : { error: `HTTP ${answer.status}` });
  } catch (error) {
    page.health.set(name, { error: String(error.message || error) });
  }
  renderEnvironments();
  const button = document.querySelector(`[data-health-of="${CSS.escape(name)}"]`);
  if (button) button.focus();
}

// --- drawing --------------------------------------------------------------------------------------

function render() {
  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : "";
  renderReplica();
  renderNotices();
  renderEnvironments();
  renderMatrix();
  renderDetail();
  if (focused) {
    const again = document.querySelector(`[data-key="${CSS.escape(focused)}"]`);
    if (again) again.focus();
  }
}

function renderReplica() {
  const d = page.data;
  const role = d.leader ? "leader" : "follower";
  const parts = [pill(d.ready ? "ok" : "bad", d.ready ? "ready" : "not ready"), pill("muted", role)];
  parts.push(el("span", { class: "identity", text: d.identity || "" }));
  if (d.members && d.members.length) parts.push(el("span", { class: "muted", text: `${d.members.length} replicas` }));
  document.getElementById("replica").replaceChildren(...parts);
}

function renderNotices() {
  const d = page.data;
  const notes = [];
  if (d.fetch_error) notes.push(el("p", { class: "notice bad", text: `Fetch failed: ${d.fetch_error}` }));
  for (const reason of d.not_ready || []) notes.push(el("p", { class: "notice", text: `Not ready: ${reason}` }));
  document.getElementById("notices").replaceChildren(...notes);
  const legend = Object.entries(STATES).map(([state, label]) =>
    el("li", { title: HELP[state] }, el("span", { class: `swatch state-${state}`, "aria-hidden": "true" }), label),
  );
  document.getElementById("legend").replaceChildren(...legend);
}

function healthOf(env) {
  const last = env.last_pass;
  if (last && last.health) return last.health;
  if (env.running && env.running.rollout) return { status: env.running.rollout, message: env.running.rollout_message };
  return null;
}

const HEALTH_KIND = { Current: "ok", Failed: "bad", InProgress: "busy", Unknown: "muted" };

function renderEnvironments() {
  const d = page.data;
  if (!d) return;
  const cards = d.environments.map((env) => environmentCard(env));
  document.getElementById("environments").replaceChildren(...cards);
}

function environmentCard(env) {
  const health = healthOf(env);
  const running = env.running;
  const last = env.last_pass;
  const head = el(
    "div",
    { class: "env-head" },
    el("h3", { id: `env-${env.name}`, text: env.name }),
    pill("muted", env.policy),
    health ? pill(HEALTH_KIND[health.status] || "muted", health.status) : pill("muted", "no rollout yet"),
    env.waiting ? pill("warn", "waiting for approval") : null,
  );
  const rows = [
    fact("runs", running ? commitRef(running.commit, running.links && running.links.commit) : "nothing yet",
      running ? " " : null, running ? when(running.time) : null),
    running && running.rolled_back_from ? fact("rolled back from", commitRef(running.rolled_back_from, "")) : null,
    lastChangeFact(env.name),
    running && running.approved_by ? fact("approved by", running.approved_by) : null,
    fact("owner", env.owner || "no replica owns it now"),
    fact("branch", env.branch, env.target && running && env.target !== running.commit
      ? el("span", { class: "muted", text: ` head ${short(env.target)}` }) : null),
    lastPassFact(last),
    health && health.message ? fact("health", el("span", { class: "clamp", title: health.message, text: health.message })) : null,
    running && running.images.length ? fact("images", chips(running.images)) : null,
    running && running.charts.length ? fact("charts", chips(running.charts.map((c) => `${c.name} ${c.version}`))) : null,
    env.error ? fact("error", el("span", { class: "bad-text", text: env.error })) : null,
  ];
  return el(
    "article",
    { class: "env", "data-env": env.name, "aria-labelledby": `env-${env.name}` },
    head,
    el("dl", { class: "facts" }, ...rows.filter(Boolean).flat()),
    driftBlock(env),
    healthBlock(env),
  );
}

function lastChangeFact(name) {
  // the newest commit that changed this environment and runs there (the running one may have
  // changed another environment only)
  const row = page.data.commits.find((c) => c.cells[name] && c.cells[name].running);
  if (!row) return null;
  return fact("change", commitRef(row.sha, row.links.commit), " ", el("span", { class: "clamp", text: row.subject }));
}

function fact(term, ...values) {
  return [el("dt", { text: term }), el("dd", {}, ...values)];
}

function chips(values) {
  return el("span", { class: "chips" }, ...values.map((v) => el("code", { class: "chip", text: v })));
}

function commitRef(sha, url) {
  return el("code", { class: "sha" }, link(url, short(sha), `commit ${sha}`));
}

function lastPassFact(last) {
  if (!last) return fact("last pass", el("span", { class: "muted", text: "none on this replica" }));
  const outcome = last.running ? "running now" : last.outcome || "not run yet";
  const kind = last.ok === false ? "bad" : "muted";
  return fact("last pass", pill(kind, outcome), " ", when(last.finished_at),
    last.last_error ? el("div", { class: "bad-text clip", text: last.last_error }) : null);
}

function driftBlock(env) {
  const drift = env.drift;
  const total = drift.expected + drift.unexpected;
  const label = total === 0 ? "no drift" : `drift: ${drift.unexpected} unexpected, ${drift.expected} expected`;
  if (total === 0) return el("p", { class: "drift none", text: label });
  const objects = drift.objects.map((o) =>
    el(
      "li",
      { class: o.expected ? "expected" : "unexpected" },
      el("div", {}, pill(o.expected ? "muted" : "bad", o.expected ? "expected" : "unexpected"), " ",
        el("code", { text: `${o.kind}/${o.name}` }), o.namespace ? el("span", { class: "muted", text: ` in ${o.namespace}` }) : null,
        o.state !== "changed" ? el("span", { class: "muted", text: ` (${o.state})` }) : null),
      o.fields.length
        ? el("ul", { class: "fields" }, ...o.fields.map((f) =>
          el("li", {}, el("code", { text: f.path }), " by ", el("strong", { text: f.manager || "nobody" }),
            f.since ? [" ", when(f.since)] : null, f.expected ? el("span", { class: "muted", text: " (expected)" }) : null)))
        : null,
    ),
  );
  return el(
    "details",
    {
      class: `drift ${drift.unexpected ? "has-unexpected" : ""}`, "data-drift": env.name, open: page.openDrift.has(env.name),
      on: { toggle: (event) => (event.currentTarget.open ? page.openDrift.add(env.name) : page.openDrift.delete(env.name)) },
    },
    el("summary", { text: label, "data-key": `drift:${env.name}` }),
    el("ul", { class: "objects" }, ...objects),
  );
}

function healthBlock(env) {
  const got = page.health.get(env.name);
  const button = el("button", {
    type: "button", class: "ghost", "data-health-of": env.name, "data-key": `health:${env.name}`,
    text: got ? "Read object health again" : "Show object health",
    on: { click: () => loadHealth(env.name) },
  });
  if (!got) return el("div", { class: "health" }, button);
  if (got.loading) return el("div", { class: "health" }, button, el("p", { class: "muted", text: "reading…" }));
  if (got.error) return el("div", { class: "health" }, button, el("p", { class: "bad-text", text: got.error }));
  const items = got.objects.map((o) =>
    el("li", { "data-status": o.status },
      el("div", {}, pill(HEALTH_KIND[o.status] || "muted", o.status), " ", el("code", { text: `${o.kind}/${o.name}` })),
      o.message ? el("div", { class: "why", text: o.message }) : null));
  if (!items.length) items.push(el("li", { class: "muted", text: "no objects" }));
  return el("div", { class: "health" }, button, el("ul", { class: "objects-health" }, ...items));
}

function renderMatrix() {
  const d = page.data;
  const envs = d.environments.map((e) => e.name);
  const head = el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "commit" }),
    ...d.environments.map((e) => el("th", { scope: "col" }, e.name, el("span", { class: "muted policy", text: e.policy })))));
  const body = el("tbody", {}, ...d.commits.map((c, row) => commitRow(c, row, envs)));
  if (!d.commits.length) body.append(el("tr", {}, el("td", { colspan: envs.length + 1, class: "muted", text: "No commits yet." })));
  document.getElementById("matrix").replaceChildren(el("caption", { class: "sr-only", text: "Commits (rows) by environment (columns)" }), head, body);
}

function commitRow(c, row, envs) {
  const pr = c.pull_request;
  const who = el("div", { class: "muted small" }, c.author, " · ", when(c.date));
  const title = el("div", { class: "subject", "data-subject": c.sha, text: c.subject });
  const refs = el("div", { class: "refs" }, commitRef(c.sha, c.links.commit),
    pr ? link(pr.url, `#${pr.number}`, `pull request ${pr.number}`) : null,
    safeUrl(c.links.checks) ? link(c.links.checks, "checks", `GitHub checks of ${c.sha}`) : null);
  const cells = envs.map((name, col) => matrixCell(c, name, row, col));
  return el("tr", { "data-commit": c.sha }, el("th", { scope: "row", class: "commit" }, refs, title, who), ...cells);
}

function matrixCell(c, env, row, col) {
  const cell = c.cells[env];
  if (!cell) {
    return el("td", { class: "cell empty", "data-env": env, "data-commit": c.sha, "data-state": "" },
      el("span", { class: "muted", "aria-label": `${short(c.sha)} did not change ${env}`, text: "·" }));
  }
  const label = STATES[cell.state] || cell.state;
  const bits = [el("span", { class: "state", text: label })];
  if (cell.running && cell.state !== "running") bits.push(el("span", { class: "tag", text: "still running" }));
  if (cell.via && cell.via !== c.sha && cell.state !== "waiting" && cell.state !== "pending") {
    bits.push(el("span", { class: "via", text: `with ${short(cell.via)}` }));
  }
  if (cell.state === "waiting") bits.push(el("span", { class: "via", text: "needs an approval" }));
  if (cell.state === "pending") bits.push(el("span", { class: "via", text: "next pass" }));
  if (cell.time) bits.push(when(cell.time));
  if (cell.approved_by) bits.push(el("span", { class: "who", text: `✓ ${cell.approved_by}` }));
  const button = el("button", {
    type: "button", class: `cell-button state-${cell.state}`, "data-key": `cell:${c.sha}:${env}`,
    "data-row": row, "data-col": col,
    "aria-label": `${short(c.sha)} in ${env}: ${label}`,
    on: { click: () => openDetail(env, c.sha), keydown: moveFocus },
  }, ...bits);
  const selected = page.selected && page.selected.env === env && page.selected.sha === c.sha;
  return el("td", { class: `cell${selected ? " selected" : ""}`, "data-env": env, "data-commit": c.sha, "data-state": cell.state }, button);
}

// --- the detail of one cell -----------------------------------------------------------------------

function openDetail(env, sha) {
  page.selected = { env, sha };
  renderDetail();
  renderMatrix();
  document.getElementById("detail").focus();
}

function closeDetail() {
  const was = page.selected;
  page.selected = null;
  document.getElementById("detail").hidden = true;
  renderMatrix();
  if (was) {
    const back = document.querySelector(`[data-key="${CSS.escape(`cell:${was.sha}:${was.env}`)}"]`);
    if (back) back.focus();
  }
}

function renderDetail() {
  const panel = document.getElementById("detail");
  const sel = page.selected;
  const commit = sel && page.data.commits.find((c) => c.sha === sel.sha);
  const cell = commit && commit.cells[sel.env];
  if (!cell) {
    panel.hidden = true;
    return;
  }
  panel.hidden = false;
  document.getElementById("detail-title").textContent = `${short(commit.sha)} in ${sel.env}`;
  const rows = [
    fact("state", el("span", { class: `pill state-${cell.state}`, text: STATES[cell.state] || cell.state }),
      el("div", { class: "muted small", text: HELP[cell.state] || "" })),
    fact("commit", commitRef(commit.sha, commit.links.commit), " ", el("span", { text: commit.subject })),
    commit.pull_request ? fact("pull request", link(commit.pull_request.url, `#${commit.pull_request.number}`)) : null,
    safeUrl(commit.links.checks) ? fact("GitHub status", link(commit.links.checks, "checks of this commit")) : null,
    cell.via && cell.via !== commit.sha ? fact(cell.state === "waiting" || cell.state === "pending" ? "would apply" : "applied with",
      commitRef(cell.via, "")) : null,
    cell.time ? fact("when", el("span", { text: cell.time }), " ", when(cell.time)) : null,
    cell.approved_by ? fact("approved by", cell.approved_by) : null,
    cell.applied_by ? fact("applied by", cell.applied_by) : null,
    cell.rollout ? fact("rollout", cell.rollout) : null,
    cell.rolled_back_to ? fact("rolled back to", commitRef(cell.rolled_back_to, "")) : null,
    cell.rolled_back_from ? fact("rolled back from", commitRef(cell.rolled_back_from, "")) : null,
    cell.message ? fact("message", el("span", { class: "clip", text: cell.message })) : null,
    cell.images && cell.images.length ? fact("images", chips(cell.images)) : null,
    cell.charts && cell.charts.length ? fact("charts", chips(cell.charts.map((ch) => `${ch.name} ${ch.version}`))) : null,
  ];
  document.getElementById("detail-body").replaceChildren(el("dl", { class: "facts" }, ...rows.filter(Boolean).flat()));
}

// --- keyboard -------------------------------------------------------------------------------------

const MOVES = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };

function moveFocus(event) {
  const move = MOVES[event.key];
  if (!move) return;
  event.preventDefault();
  let row = Number(event.currentTarget.dataset.row);
  let col = Number(event.currentTarget.dataset.col);
  const rows = page.data.commits.length;
  const cols = page.data.environments.length;
  for (let step = 0; step < rows * cols; step += 1) {
    row += move[0];
    col += move[1];
    if (row < 0 || col < 0 || row >= rows || col >= cols) return;
    const next = document.querySelector(`button[data-row="${row}"][data-col="${col}"]`);
    if (next) {
      next.focus();
      return;
    }
  }
}

document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement) return;
  if (event.key === "Escape" && page.selected) closeDetail();
  else if (event.key === "r" && !event.ctrlKey && !event.metaKey && !event.altKey) poll();
});

document.getElementById("detail-close").addEventListener("click", closeDetail);
document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  page.token = document.getElementById("token").value.trim();
  sessionStorage.setItem("gitops-agent-token", page.token); // this tab only, gone when it closes
  document.getElementById("token-form").hidden = true;
  poll();
});
setInterval(() => {
  for (const t of document.querySelectorAll("time[datetime]")) t.textContent = ago(t.getAttribute("datetime"));
}, 15000);
poll();
