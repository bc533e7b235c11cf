// Corridor console: live dashboard counts and alerts over server-sent events. Served from the
// binary; the page has no inline script (Content-Security-Policy: 'self' only).
(function () {
  "use strict";
  var board = document.querySelector("[data-live]");
  if (!board || !window.EventSource) { return; }
  var source = new EventSource(board.getAttribute("data-live"));
  source.addEventListener("counts", function (event) {
    var counts;
    try { counts = JSON.parse(event.data); } catch (e) { return; }
    Object.keys(counts).forEach(function (key) {
      var cell = document.querySelector('[data-count="' + key.replace(/"/g, "") + '"]');
      if (!cell) { return; }
      var value = counts[key];
      var text = value && typeof value === "object" ? String(value.text) : String(value);
      var target = cell.querySelector("a, [data-value]") || cell;
      if (target.textContent !== text) { target.textContent = text; }
      if (value && typeof value === "object" && value.level) {
        cell.className = "n " + value.level;
      }
    });
  });
  // The alerts table, server-rendered for this viewer, sent again when it changes.
  var alerts = board.querySelector("[data-live-alerts]");
  source.addEventListener("alerts", function (event) {
    if (alerts && alerts.innerHTML !== event.data) { alerts.innerHTML = event.data; }
  });
})();
// Live charts: the dashboard's [data-charts] block is fetched again (server-rendered
// HTML, counts only) every few seconds and swapped in when it changed; a table a
// reader opened stays open.
(function () {
  "use strict";
  var block = document.querySelector("[data-charts]");
  if (!block || !window.fetch) { return; }
  var url = block.getAttribute("data-charts");
  var busy = false;
  var last = null;
  function refresh() {
    if (busy || document.hidden) { return; }
    busy = true;
    fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null || html === last) { return; }
        last = html;
        var open = [];
        block.querySelectorAll("details").forEach(function (d, i) { if (d.open) { open.push(i); } });
        block.innerHTML = html;
        var all = block.querySelectorAll("details");
        open.forEach(function (i) { if (all[i]) { all[i].open = true; } });
      })
      .catch(function () {})
      .then(function () { busy = false; });
  }
  window.setInterval(refresh, 5000);
})();
// Bulk selection: a checkbox with data-select-all="GROUP" ticks every data-select="GROUP".
(function () {
  "use strict";
  document.querySelectorAll("[data-select-all]").forEach(function (all) {
    all.addEventListener("change", function () {
      var group = all.getAttribute("data-select-all");
      document.querySelectorAll('[data-select="' + group + '"]').forEach(function (box) {
        box.checked = all.checked;
      });
    });
  });
})();
