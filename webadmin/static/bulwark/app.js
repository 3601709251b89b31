// Bulwark web admin: small progressive enhancements (no external code).
(function () {
  "use strict";
  // Select-all checkbox for bulk actions.
  document.querySelectorAll("[data-check-all]").forEach(function (box) {
    box.addEventListener("change", function () {
      document.querySelectorAll("input[name='" + box.dataset.checkAll + "']").forEach(function (c) { c.checked = box.checked; });
    });
  });
  // Confirmation for destructive buttons.
  document.querySelectorAll("button[data-confirm]").forEach(function (b) {
    b.addEventListener("click", function (ev) { if (!window.confirm(b.dataset.confirm)) { ev.preventDefault(); } });
  });
  // Settings that are a number of seconds: the duration beside the field, as it is typed
  // (the same words as webadmin/forms.py human_seconds).
  var units = [[86400, "day"], [3600, "hour"], [60, "minute"], [1, "second"]];
  var human = function (s) {
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(s) >= units[i][0] || units[i][0] === 1) {
        var n = Math.round(s / units[i][0] * 10) / 10;
        return n + " " + units[i][1] + (n === 1 ? "" : "s");
      }
    }
    return "";
  };
  document.querySelectorAll("input[data-unit='s']").forEach(function (inp) {
    var hint = document.createElement("span");
    hint.className = "unit-hint"; hint.id = inp.id + "-duration"; hint.setAttribute("aria-live", "polite");
    inp.insertAdjacentElement("afterend", hint);
    var show = function () {
      var v = parseFloat(inp.value);
      hint.textContent = inp.value.trim() !== "" && isFinite(v) && Math.abs(v) >= 60 ? "= " + human(v) : "";
    };
    inp.addEventListener("input", show);
    show();
  });
  // Editors that validate as you type through a REST endpoint (the Sieve editor, the rules
  // page's own rules): the endpoint answers {errors: [...], warnings: [...]}, each with its line
  // (and column where it has one); a click on a problem puts the caret on its line.
  var csrf = (document.querySelector("input[name=csrfmiddlewaretoken]") || {}).value || "";
  document.querySelectorAll("textarea[data-validate]").forEach(function (ed) {
    var out = document.getElementById(ed.dataset.problems);
    if (!out || ed.disabled) { return; }  // (a global-only setting shown to a domain admin)
    var timer = null, seq = 0;
    var goTo = function (line, column) {
      var lines = ed.value.split("\n"), pos = 0;
      for (var i = 0; i < line - 1 && i < lines.length; i++) { pos += lines[i].length + 1; }
      pos += Math.max(0, (column || 1) - 1);
      ed.focus();
      ed.setSelectionRange(pos, pos);
      var lh = parseFloat(window.getComputedStyle(ed).lineHeight) || 20;
      ed.scrollTop = Math.max(0, (line - 3) * lh);
    };
    var item = function (e, cls) {
      var li = document.createElement("li");
      li.className = cls; li.dataset.line = e.line;
      li.textContent = "Line " + e.line + (e.column ? ", column " + e.column : "") + ": " + e.message;
      li.tabIndex = 0;
      li.title = "Go to line " + e.line;
      li.addEventListener("click", function () { goTo(e.line, e.column); });
      return li;
    };
    var run = function () {
      var mine = ++seq;
      fetch(ed.dataset.validate, {
        method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRFToken": csrf},
        body: JSON.stringify({source: ed.value})
      }).then(function (r) { return r.json(); }).then(function (data) {
        if (mine !== seq) { return; }
        out.textContent = "";
        var errs = data.errors || [], warns = data.warnings || [];
        if (!errs.length && !warns.length) {
          var li = document.createElement("li"); li.className = "ok"; li.textContent = "No errors."; out.appendChild(li);
        }
        errs.forEach(function (e) { out.appendChild(item(e, "problem")); });
        warns.forEach(function (e) { out.appendChild(item(e, "warning")); });
        ed.setAttribute("aria-invalid", errs.length ? "true" : "false");
      }).catch(function () {});
    };
    ed.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(run, 300); });
    run();
  });
})();
