// The diff viewer's comments: a click on a line number opens the file's comment form under
// that line, with the line and side filled in. Without this script the same form sits below
// each file and takes the line number typed in.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var cell = event.target.closest && event.target.closest("td.ln");
    if (!cell || !cell.dataset.line) return;
    var file = cell.closest("details.dfile");
    var asking = file && file.querySelector("details.dcomment-on");
    if (!asking) return;
    var row = document.createElement("tr");
    row.className = "dnote dask";
    var td = document.createElement("td");
    td.colSpan = 3;
    row.appendChild(td);
    var old = file.querySelector("tr.dask");
    td.appendChild(asking);
    cell.parentNode.parentNode.insertBefore(row, cell.parentNode.nextSibling);
    if (old) old.remove();
    asking.open = true;
    asking.querySelector(".dline").value = cell.dataset.line;
    asking.querySelector(".dside").value = cell.dataset.side;
    asking.querySelector("textarea").focus();
  });
})();
