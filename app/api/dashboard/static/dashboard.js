// The Chorus dashboard: fetch the fleet's state every few seconds and redraw the tables.
// Plain JavaScript, no build step, no dependency. Everything user-controlled (guild, channel and
// track names, error texts) is set with textContent, never parsed as HTML.
"use strict";

(function () {
  const main = document.querySelector("main[data-state-url]");
  if (!main) return;
  const url = main.dataset.stateUrl;
  const every = Math.max(1, Number(main.dataset.pollSeconds) || 2) * 1000;
  const updated = document.getElementById("updated");

  function clock(ms) {
    const total = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(total / 3600), m = Math.floor(total / 60) % 60, s = total % 60;
    const pad = (n) => String(n).padStart(2, "0");
    return h ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
  }
  const utc = (iso) => new Date(iso).toISOString().substring(11, 19);

  function cell(label, text, options) {
    const el = document.createElement(options && options.header ? "th" : "td");
    // Explicit roles: on a phone the CSS stacks each row as a card, and display: block would
    // otherwise take the table's meaning away from screen readers.
    el.setAttribute("role", options && options.header ? "rowheader" : "cell");
    if (options && options.header) el.scope = "row";
    el.dataset.label = label;
    el.textContent = text;
    if (options && options.state !== undefined) {
      el.className = `state state-${options.state}`;
      el.dataset.state = options.state;
    }
    if (options && options.className) el.className = options.className;
    return el;
  }

  function row(attributes, cells) {
    const tr = document.createElement("tr");
    tr.setAttribute("role", "row");
    for (const [name, value] of Object.entries(attributes)) tr.setAttribute(name, value);
    for (const td of cells) tr.appendChild(td);
    return tr;
  }

  function fill(tableId, items, toRow, emptyText, columns) {
    const body = document.querySelector(`#${tableId} tbody`);
    const rows = items.map(toRow);
    if (!rows.length) {
      const td = document.createElement("td");
      td.setAttribute("role", "cell");
      td.colSpan = columns;
      td.textContent = emptyText;
      const tr = document.createElement("tr");
      tr.setAttribute("role", "row");
      tr.className = "empty";
      tr.appendChild(td);
      rows.push(tr);
    }
    body.replaceChildren(...rows);
  }

  function render(view) {
    for (const [field, value] of Object.entries(view.summary)) {
      const el = document.querySelector(`#summary [data-field="${field}"]`);
      if (el) el.textContent = String(value);
    }
    fill("workers", view.workers, (w) => {
      const name = cell("Worker", w.id, { header: true });
      if (w.current) {
        const tag = document.createElement("span");
        tag.className = "tag";
        tag.textContent = "this one";
        name.append(" ", tag);
      }
      return row({ "data-worker-id": w.id }, [
        name, cell("State", w.state, { state: w.state }), cell("Bots", String(w.bots)),
        cell("Ready", String(w.ready)), cell("Up for", w.uptime === null ? "—" : `${Math.floor(w.uptime / 60)} min`),
        cell("Address", w.address),
      ]);
    }, "No worker.", 6);
    fill("bots", view.bots, (b) => row({ "data-bot-id": b.clientId }, [
      cell("Bot", b.name, { header: true }), cell("State", b.state, { state: b.state }),
      cell("Guilds", String(b.guilds)),
      cell("Latency", b.latencyMs === null ? "—" : `${Math.round(b.latencyMs)} ms`),
      cell("Worker", b.worker === null ? "—" : b.worker), cell("Last error", b.lastError || "", { className: "error-text" }),
    ]), "No bots: add one with chorus bots add.", 6);
    fill("playing", view.playing, (p) => {
      const track = cell("Track", p.track || "—");
      if (p.author) {
        const author = document.createElement("span");
        author.className = "muted";
        author.textContent = `· ${p.author}`;
        track.append(" ", author);
      }
      const position = clock(p.positionMs) + (p.lengthMs ? ` / ${clock(p.lengthMs)}` : "");
      return row({ "data-guild-id": p.guildId, "data-bot-id": p.botId }, [
        cell("Guild", p.guild, { header: true }), cell("Channel", p.channel), track,
        cell("Position", position), cell("State", p.state, { state: p.state }),
        cell("Listeners", String(p.listeners)), cell("Bot", p.bot),
      ]);
    }, "Nothing is playing.", 7);
    fill("nodes", view.nodes, (n) => row({ "data-node": n.name }, [
      cell("Node", n.name, { header: true }), cell("State", n.state, { state: n.state }),
      cell("Bots connected", `${n.botsConnected} of ${n.connections}`),
      cell("Players", n.players === null ? "—" : String(n.players)),
      cell("Load", n.load === null ? "—" : `${Math.round(n.load * 100)}%`),
    ]), "No Lavalink node configured (LAVALINK_NODES), or no bot running.", 5);
    fill("events", view.events, (e) => {
      const time = document.createElement("time");
      time.dateTime = e.at;
      time.textContent = utc(e.at);
      const when = cell("Time", "");
      when.appendChild(time);
      return row({ "data-kind": e.kind }, [
        when, cell("Event", e.kind.replaceAll("_", " "), { className: `kind kind-${e.kind}` }),
        cell("What happened", e.text),
      ]);
    }, "Nothing happened since this worker started.", 3);
    updated.textContent = `Updated ${utc(view.generatedAt)} UTC`;
  }

  async function refresh() {
    try {
      const response = await fetch(url, {
        credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" },
      });
      if (response.status === 401) {
        updated.textContent = "Signed out: reload the page to sign in again.";
        return; // no more polling without a session
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      render(await response.json());
    } catch (error) {
      updated.textContent = `Update failed (${error.message}); retrying.`;
    }
    window.setTimeout(refresh, every);
  }

  window.setTimeout(refresh, every);
})();
