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
  // Sieve editor: validate as you type through the REST endpoint.
  var ed = document.querySelector("textarea[data-sieve-validate]");
  if (ed) {
    var out = document.getElementById("sieve-problems");
    var csrf = (document.querySelector("input[name=csrfmiddlewaretoken]") || {}).value || "";
    var timer = null, seq = 0;
    // Put the caret on the error and scroll the editor to it.
    var goTo = function (line, column) {
      var lines = ed.value.split("\n"), pos = 0;
      for (var i = 0; i < line - 1 && i < lines.length; i++) { pos += lines[i].length + 1; }
      pos += Math.max(0, (column || 1) - 1);
      ed.focus();
      ed.setSelectionRange(pos, pos);
      var lh = parseFloat(window.getComputedStyle(ed).lineHeight) || 20;
      ed.scrollTop = Math.max(0, (line - 3) * lh);
    };
    var run = function () {
      var mine = ++seq;
      fetch(ed.dataset.sieveValidate, {
        method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRFToken": csrf},
        body: JSON.stringify({source: ed.value})
      }).then(function (r) { return r.json(); }).then(function (data) {
        if (mine !== seq) { return; }
        out.textContent = "";
        var errs = data.errors || [];
        if (!errs.length) {
          var li = document.createElement("li"); li.className = "ok"; li.textContent = "No errors."; out.appendChild(li);
        }
        errs.forEach(function (e) {
          var li = document.createElement("li");
          li.className = "problem"; li.dataset.line = e.line;
          li.textContent = "Line " + e.line + ", column " + e.column + ": " + e.message;
          li.tabIndex = 0;
          li.title = "Go to line " + e.line;
          li.addEventListener("click", function () { goTo(e.line, e.column); });
          out.appendChild(li);
        });
        ed.setAttribute("aria-invalid", errs.length ? "true" : "false");
      }).catch(function () {});
    };
    ed.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(run, 300); });
    run();
  }
})();
