// Decisions that ask before they act. Without a script, each such form carries a required
// checkbox naming the head ("I approve head abc1234"): the browser will not send it unticked.
// With this script the box is hidden and the form asks in a dialog, with the same words, and
// ticks the box only when the person confirms. The server checks the head either way.
(function () {
  "use strict";
  var dialog = document.getElementById("confirm");
  if (!dialog || typeof dialog.showModal !== "function") return;
  var text = document.getElementById("confirm-text");
  var pending = null;

  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    var box = form.querySelector("input[name=confirm]");
    if (!box) return;  // the person may not decide: nothing to confirm
    box.required = false;
    box.closest("label").hidden = true;
    form.addEventListener("submit", function (event) {
      if (box.checked) return;
      event.preventDefault();
      pending = form;
      text.textContent = form.dataset.confirm;
      dialog.showModal();
    });
  });

  dialog.addEventListener("close", function () {
    var form = pending;
    pending = null;
    if (!form || dialog.returnValue !== "yes") return;
    form.querySelector("input[name=confirm]").checked = true;
    if (typeof form.requestSubmit === "function") form.requestSubmit();
    else form.submit();
  });
})();
