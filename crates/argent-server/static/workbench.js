// argent approval workbench: keyboard shortcuts. Progressive enhancement only: every
// action is a plain link or form that works without this file.
//   j / k  next / previous item (list: moves the highlight; item page: follows the links)
//   o      open the highlighted item (list)
//   a      approve & next (item page)        r  reject: focus the reason (item page)
//   e      edit: focus the edit form          x  tick the highlighted item (list)
//   ?      show or hide this help
(function () {
  "use strict";
  var rows = Array.prototype.slice.call(document.querySelectorAll("#queue tbody tr[data-id]"));
  var at = -1;
  function mark(i) {
    if (!rows.length) return;
    at = Math.max(0, Math.min(rows.length - 1, i));
    rows.forEach(function (r, n) { r.classList.toggle("kb-current", n === at); });
    rows[at].scrollIntoView({ block: "nearest" });
  }
  function click(id) { var el = document.getElementById(id); if (el && !el.disabled) { el.click(); return true; } return false; }
  function focus(id) { var el = document.getElementById(id); if (el) { el.focus(); return true; } return false; }
  function go(rel) { var el = document.querySelector("a[rel=" + rel + "]"); if (el) window.location.href = el.href; }
  document.addEventListener("keydown", function (ev) {
    var t = ev.target;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) {
      if (ev.key === "Escape") t.blur();
      return;
    }
    var handled = true;
    switch (ev.key) {
      case "j": if (rows.length) mark(at + 1); else go("next"); break;
      case "k": if (rows.length) mark(at - 1); else go("prev"); break;
      case "o": case "Enter":
        if (rows.length && at >= 0) { var a = rows[at].querySelector("a.item-link"); if (a) window.location.href = a.href; }
        else handled = false;
        break;
      case "x":
        if (rows.length && at >= 0) { var c = rows[at].querySelector("input[type=checkbox]"); if (c) c.checked = !c.checked; }
        break;
      case "a": handled = click("approve-next") || click("approve"); break;
      case "r": handled = focus("reject-note"); break;
      case "e":
        var f = document.querySelector("#edit-form input:not([readonly]):not([type=hidden]), #edit-form textarea:not([readonly])");
        if (f) f.focus(); else handled = false;
        break;
      case "?": var h = document.getElementById("kb-help"); if (h) h.hidden = !h.hidden; break;
      default: handled = false;
    }
    if (handled) ev.preventDefault();
  });
  var help = document.getElementById("kb-help");
  if (help) help.setAttribute("data-enhanced", "1");
})();
