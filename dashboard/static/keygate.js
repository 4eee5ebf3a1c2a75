// keygate dashboard: small progressive enhancements. Every page works
// without this file.
(function () {
  "use strict";

  // Copy buttons: <button data-copy="element-id" hidden>. Shown only when
  // this script runs, since without it they could do nothing.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target) {
      return;
    }
    var label = button.textContent;
    var status = document.querySelector("[data-copy-status]");
    button.hidden = false;

    function copied() {
      button.textContent = "Copied";
      button.setAttribute("data-copied", "true");
      if (status) {
        status.textContent = button.getAttribute("data-copied-message") || "Token copied to the clipboard.";
      }
      window.setTimeout(function () {
        button.textContent = label;
      }, 2000);
    }

    function fallback() {
      target.focus();
      target.select();
      try {
        if (document.execCommand("copy")) {
          copied();
        }
      } catch (e) {
        // The text stays selected for the person to copy by hand.
      }
    }

    button.addEventListener("click", function () {
      var text = target.value;
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(copied, fallback);
      } else {
        fallback();
      }
    });
  });

  // Selecting the whole token on focus makes copying by hand one step.
  document.querySelectorAll("input.secret").forEach(function (input) {
    input.addEventListener("focus", function () {
      input.select();
    });
  });

  // The page that shows a new token answers a form post. Replacing its
  // address with the token list's means a reload shows the list instead of
  // posting the form again; the token is never shown twice.
  var replace = document.querySelector("[data-replace-url]");
  if (replace && window.history && window.history.replaceState) {
    window.history.replaceState(null, "", replace.getAttribute("data-replace-url"));
  }
})();
