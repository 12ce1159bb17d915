(function () {
  "use strict";
  // Filter and sort the findings table. Without this script the table is complete and plain.
  var table = document.getElementById("findings-table");
  var panel = document.getElementById("finding-filters");
  if (!table || !panel) { return; }
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var texts = null;
  var account = document.getElementById("f-account");
  var ou = document.getElementById("f-ou");
  var state = document.getElementById("f-state");
  var search = document.getElementById("f-text");
  var count = document.getElementById("f-count");
  var printNote = document.getElementById("f-print-note");

  function apply() {
    var a = account.value, o = ou.value, s = state.value;
    var q = search.value.trim().toLowerCase();
    if (q && texts === null) {
      texts = rows.map(function (r) { return r.textContent.toLowerCase(); });
    }
    var shown = 0;
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      var rowOu = r.getAttribute("data-ou");
      var ok = (!a || r.getAttribute("data-account") === a) &&
        (!o || rowOu === o || rowOu.indexOf(o + "/") === 0) &&
        (!s || r.getAttribute("data-state") === s) &&
        (!q || texts[i].indexOf(q) !== -1);
      r.hidden = !ok;
      if (ok) { shown++; }
    }
    var text = "Showing " + shown + " of " + rows.length + " findings";
    count.textContent = text;
    printNote.textContent = shown === rows.length ? "" : "Filtered view: " + text + ".";
  }

  function key(row, index) {
    var cell = row.cells[index];
    var v = cell.getAttribute("data-v");
    return (v === null ? cell.textContent : v).trim().toLowerCase();
  }

  function sortBy(th, index) {
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    var heads = table.tHead.rows[0].cells;
    for (var i = 0; i < heads.length; i++) { heads[i].removeAttribute("aria-sort"); }
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var keyed = rows.map(function (r, i) { return [key(r, index), i, r]; });
    keyed.sort(function (x, y) {
      var c = x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : x[1] - y[1];
      return ascending || x[0] === y[0] ? c : -c;
    });
    rows = keyed.map(function (k) { return k[2]; });
    texts = null;
    var fragment = document.createDocumentFragment();
    rows.forEach(function (r) { fragment.appendChild(r); });
    body.appendChild(fragment);
  }

  // The header cells themselves sort (no buttons), so a printed header repeats as plain text.
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
    if (!th.hasAttribute("data-sort")) { return; }
    th.tabIndex = 0;
    th.classList.add("sortable");
    th.setAttribute("title", "Sort by " + th.textContent.toLowerCase());
    th.addEventListener("click", function () { sortBy(th, index); });
    th.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(th, index); }
    });
  });
  [account, ou, state].forEach(function (el) { el.addEventListener("change", apply); });
  search.addEventListener("input", apply);
  document.getElementById("f-reset").addEventListener("click", function () {
    account.value = ""; ou.value = ""; state.value = ""; search.value = "";
    apply();
  });
  panel.hidden = false;
  apply();
})();
