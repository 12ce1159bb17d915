(function () {
  "use strict";
  // Filter and sort every rule's findings table. Without this script the tables are complete
  // and plain.
  var panel = document.getElementById("finding-filters");
  if (!panel) { return; }
  var rule = document.getElementById("f-rule");
  var account = document.getElementById("f-account");
  var ou = document.getElementById("f-ou");
  var state = document.getElementById("f-state");
  var search = document.getElementById("f-text");
  var count = document.getElementById("f-count");
  var printNote = document.getElementById("f-print-note");

  // One entry per rule's part of the page; a rule without findings has no table.
  var parts = Array.prototype.map.call(
    document.querySelectorAll("[data-rule-section]"),
    function (section) {
      var table = section.querySelector("table.findings");
      return {
        section: section,
        rule: section.getAttribute("data-rule-section"),
        table: table,
        rows: table ? Array.prototype.slice.call(table.tBodies[0].rows) : [],
        texts: null,
        count: section.querySelector("[data-count]")
      };
    }
  );

  function plural(n) { return n === 1 ? " finding" : " findings"; }

  function apply() {
    var want = rule.value, a = account.value, o = ou.value, s = state.value;
    var q = search.value.trim().toLowerCase();
    var shown = 0, total = 0;
    parts.forEach(function (part) {
      var chosen = !want || part.rule === want;
      part.section.hidden = !chosen;
      if (q && part.texts === null) {
        part.texts = part.rows.map(function (r) { return r.textContent.toLowerCase(); });
      }
      var here = 0;
      for (var i = 0; i < part.rows.length; i++) {
        var r = part.rows[i];
        var rowOu = r.getAttribute("data-ou");
        var ok = chosen &&
          (!a || r.getAttribute("data-account") === a) &&
          (!o || rowOu === o || rowOu.indexOf(o + "/") === 0) &&
          (!s || r.getAttribute("data-state") === s) &&
          (!q || part.texts[i].indexOf(q) !== -1);
        r.hidden = !ok;
        if (ok) { here++; }
      }
      var all = part.rows.length;
      part.count.textContent = here === all ? all + plural(all) : here + " of " + all + plural(all);
      shown += here;
      total += all;
    });
    var text = "Showing " + shown + " of " + total + " findings";
    count.textContent = text;
    printNote.textContent = shown === total && !want ? "" : "Filtered view: " + text + ".";
  }

  function key(row, index) {
    var cell = row.cells[index];
    var v = cell.getAttribute("data-v");
    return (v === null ? cell.textContent : v).trim().toLowerCase();
  }

  function sortBy(part, th, index) {
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    var heads = part.table.tHead.rows[0].cells;
    for (var i = 0; i < heads.length; i++) { heads[i].removeAttribute("aria-sort"); }
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var keyed = part.rows.map(function (r, i) { return [key(r, index), i, r]; });
    keyed.sort(function (x, y) {
      var c = x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : x[1] - y[1];
      return ascending || x[0] === y[0] ? c : -c;
    });
    part.rows = keyed.map(function (k) { return k[2]; });
    part.texts = null;
    var fragment = document.createDocumentFragment();
    part.rows.forEach(function (r) { fragment.appendChild(r); });
    part.table.tBodies[0].appendChild(fragment);
  }

  // The header cells themselves sort (no buttons), so a printed header repeats as plain text.
  parts.forEach(function (part) {
    if (!part.table) { return; }
    Array.prototype.forEach.call(part.table.tHead.rows[0].cells, function (th, index) {
      if (!th.hasAttribute("data-sort")) { return; }
      th.tabIndex = 0;
      th.classList.add("sortable");
      th.setAttribute("title", "Sort by " + th.textContent.toLowerCase());
      th.addEventListener("click", function () { sortBy(part, th, index); });
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          sortBy(part, th, index);
        }
      });
    });
  });
  [rule, account, ou, state].forEach(function (el) { el.addEventListener("change", apply); });
  search.addEventListener("input", apply);
  document.getElementById("f-reset").addEventListener("click", function () {
    rule.value = ""; account.value = ""; ou.value = ""; state.value = ""; search.value = "";
    apply();
  });
  panel.hidden = false;
  apply();
})();
