// opsdesk pages: keyboard shortcuts, clickable view rows, the rule builder's choices.
// Plain script, no build step; every page works without it (forms post as usual).
(function () {
  "use strict";

  function typing(e) {
    var t = e.target;
    return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
  }

  // ---- keyboard shortcuts ----
  var rows = function () { return Array.prototype.slice.call(document.querySelectorAll("table[data-keyboard-list] tbody tr[data-href]")); };
  var current = -1;
  function select(i) {
    var r = rows();
    if (!r.length) return;
    current = Math.max(0, Math.min(r.length - 1, i));
    r.forEach(function (row, j) { row.classList.toggle("selected", j === current); });
    var link = r[current].querySelector("a");
    if (link) link.focus();
  }
  document.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      var f = document.getElementById("ticket-form");
      if (f && f.contains(e.target)) { e.preventDefault(); f.requestSubmit(); }
      return;
    }
    var help = document.getElementById("shortcuts");
    if (e.key === "Escape" && help && !help.hidden) { help.hidden = true; return; }
    if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    var q = document.getElementById("q");
    switch (e.key) {
      case "/": if (q) { e.preventDefault(); q.focus(); } break;
      case "j": select(current + 1); break;
      case "k": select(current - 1); break;
      case "o": if (current >= 0) { window.location = rows()[current].dataset.href; } break;
      case "x": if (current >= 0) { var c = rows()[current].querySelector("input[type=checkbox]"); if (c) c.checked = !c.checked; } break;
      case "r": var b = document.getElementById("body"); if (b) { e.preventDefault(); b.focus(); } break;
      case "?": if (help) { help.hidden = false; var btn = help.querySelector("[data-close]"); if (btn) btn.focus(); } break;
    }
  });
  document.addEventListener("click", function (e) {
    if (e.target.matches("[data-close]")) { e.target.closest("[role=dialog]").hidden = true; }
  });

  // ---- forms that choose on change ----
  document.addEventListener("change", function (e) {
    if (e.target.matches("select[data-autosubmit]")) e.target.form.submit();
  });

  // ---- the rule builder: only valid operators and values for the chosen field ----
  var defsEl = document.getElementById("rule-definitions");
  if (!defsEl) return;
  var defs = {};
  try { defs = JSON.parse(defsEl.textContent); } catch (err) { return; }
  var byField = {};
  (defs.conditions_all || []).forEach(function (d) { byField[d.subject] = d; });
  var actionValues = { status: byField.status && byField.status.values, priority: byField.priority && byField.priority.values, type: byField.type && byField.type.values };

  function options(sel, list, current) {
    sel.innerHTML = "";
    var blank = document.createElement("option");
    blank.value = ""; blank.textContent = "Choose…";
    sel.appendChild(blank);
    list.forEach(function (v) {
      var o = document.createElement("option");
      o.value = v; o.textContent = v.replace(/_/g, " ");
      if (v === current) o.selected = true;
      sel.appendChild(o);
    });
    if (current && list.indexOf(current) < 0) {
      var extra = document.createElement("option");
      extra.value = current; extra.textContent = current; extra.selected = true;
      sel.appendChild(extra);
    }
  }
  // Swap an input for a select with the same name (or back), keeping its value.
  function asSelect(input, list) {
    var value = input.value;
    if (!list) {
      if (input.tagName === "SELECT") {
        var i = document.createElement("input");
        i.name = input.name; i.value = value; i.dataset.role = input.dataset.role;
        input.replaceWith(i);
        return i;
      }
      return input;
    }
    var s = input;
    if (input.tagName !== "SELECT") {
      s = document.createElement("select");
      s.name = input.name; s.dataset.role = input.dataset.role;
      input.replaceWith(s);
    }
    options(s, list, value);
    return s;
  }
  // Custom fields share one definition per kind ("custom_fields_<id>",
  // "organization.custom_fields_<key>", "requester.custom_fields_<key>").
  function definition(f) {
    if (byField[f]) return byField[f];
    var m = /^(organization\.|requester\.)?custom_fields_/.exec(f || "");
    if (!m) return null;
    return byField[(m[1] || "") + "custom_fields_" + (m[1] ? "<key>" : "<id>")] || null;
  }
  function refresh(row) {
    var field = row.querySelector("[data-role=field]");
    var actionField = row.querySelector("[data-role=action-field]");
    var value = row.querySelector("[data-role=value]");
    if (field) {
      var d = definition(field.value);
      var op = row.querySelector("[data-role=operator]");
      if (op) asSelect(op, d ? d.operators.map(function (o) { return o.value || o; }) : null);
      if (value) asSelect(value, d && Array.isArray(d.values) ? d.values : null);
    } else if (actionField && value) {
      asSelect(value, actionValues[actionField.value] || null);
    }
  }
  var form = document.querySelector("[data-rule-builder]");
  form.querySelectorAll(".rule-row").forEach(refresh);
  form.addEventListener("change", function (e) {
    var row = e.target.closest(".rule-row");
    if (row && (e.target.dataset.role === "field" || e.target.dataset.role === "action-field")) refresh(row);
  });
  form.addEventListener("click", function (e) {
    if (e.target.matches("[data-remove-row]")) {
      var row = e.target.closest(".rule-row");
      // The last row of a set stays (emptied): "Add" copies it.
      if (row.parentElement.querySelectorAll(".rule-row").length > 1) { row.remove(); }
      else { row.querySelectorAll("input, select").forEach(function (i) { i.value = ""; }); refresh(row); }
    }
    if (e.target.matches("[data-add-row]")) {
      var set = e.target.closest("fieldset");
      var rows = set.querySelectorAll(".rule-row");
      var tpl = rows[rows.length - 1];
      if (!tpl) return; // the page always renders one row to copy
      var fresh = tpl.cloneNode(true);
      fresh.querySelectorAll("input, select").forEach(function (i) { i.value = ""; });
      set.insertBefore(fresh, e.target);
      refresh(fresh);
    }
  });
})();
