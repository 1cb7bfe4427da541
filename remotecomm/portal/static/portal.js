// The portal's one script: live pages and countdowns. Everything else works without it.
// A page that follows something names it in <main data-watch="...">; when the server says
// it changed, the page is loaded again (the server renders every state). Elements with
// data-deadline (epoch milliseconds) count down to it.
"use strict";

(function () {
  const main = document.getElementById("main");
  const watch = main && main.dataset.watch;
  if (watch && window.EventSource) {
    const events = new EventSource("/portal/events?watch=" + encodeURIComponent(watch) +
                                   "&seen=" + encodeURIComponent(main.dataset.seen || ""));
    events.addEventListener("change", function () {
      events.close();
      window.location.reload();
    });
  }

  const deadlines = document.querySelectorAll("[data-deadline]");
  if (deadlines.length) {
    const tick = function () {
      deadlines.forEach(function (element) {
        const left = Math.max(0, Math.round((Number(element.dataset.deadline) - Date.now()) / 1000));
        element.textContent = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
        element.setAttribute("aria-label", left + " s left");
      });
    };
    tick();
    window.setInterval(tick, 1000);
  }
})();
