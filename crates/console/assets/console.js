// Corridor console: live dashboard counts over server-sent events. Served from the
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
      var target = cell.querySelector("a") || cell;
      if (target.textContent !== text) { target.textContent = text; }
      if (value && typeof value === "object" && value.level) {
        cell.className = "n " + value.level;
      }
    });
  });
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
