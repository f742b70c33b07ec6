// Serin dashboard: live updates from /events (server-sent events). The pages work without it;
// this only keeps the phase and weight of what is shown current, without reloading.
"use strict";
(function () {
  if (!window.EventSource) return;

  function phaseClass(phase) {
    return "badge phase-" + (phase || "unknown").toLowerCase();
  }

  function setBadge(el, phase) {
    if (!el) return;
    el.className = phaseClass(phase);
    el.textContent = phase || "Unknown";
  }

  function cssEscape(s) {
    return window.CSS && CSS.escape ? CSS.escape(s) : s.replace(/["\\]/g, "\\$&");
  }

  function setWeight(cell, c) {
    cell.setAttribute("data-canary-weight", String(c.canaryWeight));
    var bar = cell.querySelector(".bar");
    if (bar) {
      bar.setAttribute("aria-label", "primary " + c.primaryWeight + "%, canary " + c.canaryWeight + "%");
      var p = bar.querySelector(".primary");
      var k = bar.querySelector(".canary");
      if (p) p.style.width = c.primaryWeight + "%";
      if (k) k.style.width = c.canaryWeight + "%";
    }
    var pct = cell.querySelector(".pct");
    if (pct) pct.textContent = c.canaryWeight + "%";
  }

  function text(el, value) {
    if (el) el.textContent = value;
  }

  function setSince(td, c) {
    if (!td) return;
    td.textContent = "";
    if (c.lastTransitionTime) {
      var t = document.createElement("time");
      t.setAttribute("datetime", c.lastTransitionTime);
      t.textContent = c.lastTransition;
      td.appendChild(t);
    } else {
      td.textContent = c.lastTransition;
    }
  }

  function newRow(c) {
    var key = c.namespace + "/" + c.name;
    var tr = document.createElement("tr");
    tr.setAttribute("data-canary", key);
    var th = document.createElement("th");
    th.scope = "row";
    th.className = "name";
    var a = document.createElement("a");
    a.href = "/canaries/" + encodeURIComponent(c.namespace) + "/" + encodeURIComponent(c.name);
    a.textContent = key;
    th.appendChild(a);
    tr.appendChild(th);
    var phase = document.createElement("td");
    phase.className = "phase";
    phase.appendChild(document.createElement("span"));
    tr.appendChild(phase);
    var weight = document.createElement("td");
    weight.className = "weight";
    var bar = document.createElement("div");
    bar.className = "bar";
    bar.setAttribute("role", "img");
    var p = document.createElement("span");
    p.className = "primary";
    var k = document.createElement("span");
    k.className = "canary";
    bar.appendChild(p);
    bar.appendChild(k);
    weight.appendChild(bar);
    var pct = document.createElement("span");
    pct.className = "pct";
    weight.appendChild(pct);
    tr.appendChild(weight);
    ["failed", "step", "next", "since"].forEach(function (cls) {
      var td = document.createElement("td");
      td.className = cls;
      tr.appendChild(td);
    });
    return tr;
  }

  function updateRow(table, c) {
    var key = c.namespace + "/" + c.name;
    var tr = table.querySelector('tr[data-canary="' + cssEscape(key) + '"]');
    if (!tr) {
      var filter = document.getElementById("namespace");
      if (filter && filter.value && filter.value !== c.namespace) return;
      var q = document.getElementById("q");
      if (q && q.value && key.toLowerCase().indexOf(q.value.toLowerCase()) < 0) return;
      tr = newRow(c);
      var empty = table.querySelector("tr.empty");
      if (empty) empty.remove();
      table.tBodies[0].appendChild(tr);
    }
    tr.setAttribute("data-phase", c.phase);
    setBadge(tr.querySelector("td.phase span.badge, td.phase span"), c.phase);
    var cell = tr.querySelector("td.weight");
    if (cell) setWeight(cell, c);
    text(tr.querySelector("td.failed"), c.failedChecks + " / " + c.threshold);
    text(tr.querySelector("td.step"), c.step);
    text(tr.querySelector("td.next"), c.nextStep);
    setSince(tr.querySelector("td.since"), c);
  }

  function updateDetail(state, c) {
    if (state.getAttribute("data-canary") !== c.namespace + "/" + c.name) return;
    var phase = document.getElementById("phase");
    if (phase) {
      phase.setAttribute("data-phase", c.phase);
      setBadge(phase, c.phase);
    }
    var w = document.getElementById("canary-weight");
    if (w) {
      w.setAttribute("data-canary-weight", String(c.canaryWeight));
      w.textContent = c.canaryWeight + "%";
    }
    text(document.getElementById("failed-checks"), c.failedChecks + " / " + c.threshold);
    text(document.getElementById("step"), c.step);
    text(document.getElementById("next-step"), c.nextStep);
  }

  function start() {
    var table = document.getElementById("canaries");
    var state = document.getElementById("state");
    if (!table && !state) return;
    var source = new EventSource("/events");
    source.addEventListener("canary", function (ev) {
      var c;
      try { c = JSON.parse(ev.data); } catch (e) { return; }
      if (table) updateRow(table, c);
      if (state) updateDetail(state, c);
    });
    source.addEventListener("removed", function (ev) {
      var c;
      try { c = JSON.parse(ev.data); } catch (e) { return; }
      if (!table) return;
      var tr = table.querySelector('tr[data-canary="' + cssEscape(c.namespace + "/" + c.name) + '"]');
      if (tr) tr.remove();
    });
    source.addEventListener("open", function () {
      document.documentElement.setAttribute("data-live", "on");
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
