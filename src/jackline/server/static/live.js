// The run page's live audit log: new events arrive over server-sent events and are written as
// text nodes only (the log holds agent-written text). When the run's status changes, the page
// reloads to show what the new status brings (the handoff, the diff, the review forms).
(function () {
  "use strict";
  var log = document.getElementById("log");
  if (!log || !log.dataset.live || !window.EventSource) return;
  var shown = log.dataset.status;
  var source = new EventSource(log.dataset.live);

  function cell(tag, cls, text) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    el.textContent = text;
    return el;
  }

  source.addEventListener("audit", function (msg) {
    var e = JSON.parse(msg.data);
    var li = document.createElement("li");
    li.className = e.intact ? "fresh" : "fresh broken";
    li.appendChild(cell("span", "seq", String(e.seq)));
    li.appendChild(cell("time", "", e.time));
    li.appendChild(cell("span", "kind", e.kind));
    li.appendChild(cell("span", "line", e.line));
    log.appendChild(li);
    log.scrollTop = log.scrollHeight;
  });

  source.addEventListener("status", function (msg) {
    var status = JSON.parse(msg.data).status;
    if (status !== shown) {
      source.close();
      window.location.reload();
    }
  });

  source.addEventListener("end", function () {
    source.close();
  });
})();
