// Progressive enhancement only: every page works without it.
(function () {
  "use strict";
  var q = function (s) { return Array.prototype.slice.call(document.querySelectorAll(s)); };
  q("[data-js]").forEach(function (el) { el.hidden = false; });
  q("button[data-toggle]").forEach(function (b) {
    b.addEventListener("click", function () {
      var open = b.getAttribute("data-toggle") === "open";
      q("details.thread").forEach(function (d) { d.open = open; });
    });
  });
  q("button[data-copy]").forEach(function (b) {
    b.addEventListener("click", function () {
      var code = document.getElementById(b.getAttribute("data-copy"));
      if (!code || !navigator.clipboard) { return; }
      navigator.clipboard.writeText(code.textContent).then(function () {
        b.textContent = "copied";
        setTimeout(function () { b.textContent = "copy"; }, 1500);
      });
    });
  });
  var filter = document.getElementById("filter");
  if (filter) {
    filter.addEventListener("input", function () {
      var words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
      var shown = 0;
      q(".group").forEach(function (g) {
        var text = g.textContent.toLowerCase();
        var ok = words.every(function (w) { return text.indexOf(w) >= 0; });
        g.hidden = !ok;
        if (ok) { shown += 1; }
      });
      document.getElementById("filter-count").textContent = words.length ? shown + " shown" : "";
    });
  }
})();
