// Progressive enhancement: live rows over server-sent events, filters, ticking uptimes,
// confirmation of actions, live log tail. The pages work without it.
"use strict";
(function () {
  const table = document.getElementById("overview");
  const fmt = (s) => {
    if (s === null || s === undefined || s === "") return "";
    s = Math.floor(Number(s));
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    if (d) return d + "d" + h + "h";
    if (h) return h + "h" + m + "m";
    return m ? m + "m" + (s % 60) + "s" : s + "s";
  };
  const started = new Map();  // name -> time (ms) its process started, for ticking uptimes
  const text = (el, value) => { if (el.textContent !== value) el.textContent = value; };

  function cell(tr, cls) { return tr.querySelector("td." + cls); }

  function makeRow(name) {
    const tr = document.createElement("tr");
    tr.id = "row-" + name;
    tr.dataset.name = name;
    const columns = ["name", "state", "ready", "version", "uptime", "restarts", "target", "reason"];
    if (table.dataset.repos) columns.splice(1, 0, "repo");
    for (const cls of columns) {
      const td = document.createElement("td");
      td.className = cls;
      tr.appendChild(td);
    }
    const a = document.createElement("a");
    a.href = "/i/" + encodeURIComponent(name);
    a.textContent = name;
    cell(tr, "name").appendChild(a);
    const rows = Array.from(table.tBodies[0].rows);
    const after = rows.find((r) => r.dataset.name > name);
    table.tBodies[0].insertBefore(tr, after || null);
    return tr;
  }

  function update(row, flash) {
    const tr = document.getElementById("row-" + row.name) || makeRow(row.name);
    tr.dataset.state = row.state;
    tr.dataset.repo = row.repo_label || "";
    if (table.dataset.repos) text(cell(tr, "repo"), row.repo_label || "");
    tr.dataset.ready = row.ready ? "yes" : "no";
    tr.className = "state-" + row.state.replace(/ /g, "-") + (flash ? " flash" : "");
    if (flash) setTimeout(() => tr.classList.remove("flash"), 1200);
    text(cell(tr, "state"), row.state);
    const ready = cell(tr, "ready");
    ready.textContent = "";
    const span = document.createElement("span");
    span.className = row.ready ? "ok" : "bad";
    span.textContent = row.ready ? "● ready" : (row.health ? "● " + row.health : "—");
    if (!row.ready && !row.health) span.className = "";
    ready.appendChild(span);
    text(cell(tr, "version"), row.version || "");
    text(cell(tr, "restarts"), String(row.restarts));
    text(cell(tr, "target"), row.target || "");
    text(cell(tr, "reason"), row.reason || "");
    if (row.uptime === null || row.uptime === undefined) started.delete(row.name);
    else started.set(row.name, Date.now() - row.uptime * 1000);
  }

  function applyFilters() {
    const q = (document.getElementById("filter-q").value || "").toLowerCase();
    const st = document.getElementById("filter-state").value;
    const repoFilter = document.getElementById("filter-repo");
    const repo = repoFilter ? repoFilter.value : "";
    let shown = 0, ready = 0, total = 0;
    for (const tr of table.tBodies[0].rows) {
      total++;
      if (tr.dataset.ready === "yes") ready++;
      const okText = !q || tr.textContent.toLowerCase().includes(q);
      const okState = !st || (st === "not-ready" ? tr.dataset.ready !== "yes" : tr.dataset.state === st);
      tr.hidden = !(okText && okState && (!repo || tr.dataset.repo === repo));
      if (!tr.hidden) shown++;
    }
    document.getElementById("counts").textContent =
      total + " instances · " + ready + " ready" + (shown !== total ? " · " + shown + " shown" : "");
  }

  function tick() {
    for (const tr of table.tBodies[0].rows) {
      const t = started.get(tr.dataset.name);
      text(cell(tr, "uptime"), t === undefined ? "" : fmt((Date.now() - t) / 1000));
    }
  }

  function showAlert(ev) {
    const box = document.getElementById("alerts");
    const key = ev.instance + "|" + ev.kind;
    const old = box.querySelector('[data-key="' + CSS.escape(key) + '"]');
    if (ev.status === "resolved") { if (old) old.remove(); return; }
    if (old) return;
    const div = document.createElement("div");
    div.className = "alert";
    div.dataset.key = key;
    div.textContent = "⚠ " + ev.message;
    box.appendChild(div);
  }

  if (table) {
    for (const tr of table.tBodies[0].rows) {
      if (tr.dataset.uptime !== "") started.set(tr.dataset.name, Date.now() - Number(tr.dataset.uptime) * 1000);
    }
    const live = document.getElementById("live");
    const source = new EventSource("/events");
    source.addEventListener("open", () => { live.textContent = "● live"; live.className = "live on"; });
    source.addEventListener("error", () => { live.textContent = "○ reconnecting"; live.className = "live"; });
    source.addEventListener("rows", (e) => {
      const data = JSON.parse(e.data);
      if (data.full) {
        const names = new Set(data.changed.map((r) => r.name));
        for (const tr of Array.from(table.tBodies[0].rows)) if (!names.has(tr.dataset.name)) tr.remove();
      }
      data.changed.forEach((row) => update(row, !data.full));
      data.removed.forEach((n) => { const tr = document.getElementById("row-" + n); if (tr) tr.remove(); });
      const err = document.getElementById("poll-error");
      err.hidden = !data.error;
      err.textContent = data.error || "";
      applyFilters();
      tick();
    });
    source.addEventListener("alert", (e) => showAlert(JSON.parse(e.data)));
    document.getElementById("filter-q").addEventListener("input", applyFilters);
    document.getElementById("filter-state").addEventListener("change", applyFilters);
    const repoFilter = document.getElementById("filter-repo");
    if (repoFilter) repoFilter.addEventListener("change", applyFilters);
    applyFilters();
    tick();
    setInterval(tick, 1000);
  }

  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (e) => {
      const version = form.querySelector("select[name=version]");
      const what = form.dataset.confirm.replace("?", (version && version.value ? " at " + version.value : "") + "?");
      if (!window.confirm(what[0].toUpperCase() + what.slice(1))) e.preventDefault();
    });
  }

  const log = document.getElementById("log");
  if (log && log.dataset.stream) {
    log.scrollTop = log.scrollHeight;
    const tail = new EventSource(log.dataset.stream);
    tail.addEventListener("line", (e) => {
      const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 20;
      log.appendChild(document.createTextNode(JSON.parse(e.data) + "\n"));
      if (atEnd) log.scrollTop = log.scrollHeight;
    });
    tail.addEventListener("end", () => tail.close());
  }
})();
