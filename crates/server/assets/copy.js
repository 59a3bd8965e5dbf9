// The copy buttons of the secret pages: the one thing the page does with JavaScript.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    // Without a script the button could do nothing, so it is shown only here.
    if (!navigator.clipboard) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy"));
      var status = document.getElementById("copy-status");
      if (!source || !navigator.clipboard) {
        if (status) status.textContent = "Select the text and copy it yourself.";
        return;
      }
      navigator.clipboard.writeText(source.textContent.trim()).then(function () {
        button.textContent = "Copied";
        if (status) status.textContent = "Copied to the clipboard.";
      }, function () {
        if (status) status.textContent = "Could not copy: select the text and copy it yourself.";
      });
    });
  });
});
