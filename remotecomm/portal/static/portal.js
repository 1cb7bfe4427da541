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

// Uploads (a form with data-upload): the file goes as the request's body, with a progress
// bar; the CSRF token goes in a header. The page shows the new image once it is kept.
(function () {
  const form = document.querySelector("form[data-upload]");
  if (!form || !window.XMLHttpRequest) {
    return;
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const file = form.querySelector("input[type=file]").files[0];
    const version = form.querySelector("input[name=version]").value;
    const bar = document.getElementById("upload-progress");
    const status = document.getElementById("upload-status");
    const button = form.querySelector("button");
    if (!file) {
      return;
    }
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action + "?version=" + encodeURIComponent(version));
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.setRequestHeader("X-CSRF-Token", form.dataset.csrf);
    bar.hidden = false;
    bar.value = 0;
    button.disabled = true;
    status.textContent = "";
    xhr.upload.addEventListener("progress", function (progress) {
      if (progress.lengthComputable) {
        bar.value = Math.round(100 * progress.loaded / progress.total);
      }
    });
    xhr.addEventListener("load", function () {
      if (xhr.status === 201) {
        window.location.reload();
        return;
      }
      const page = new DOMParser().parseFromString(xhr.responseText, "text/html");
      const notice = page.querySelector(".notice");
      status.textContent = (notice ? notice.textContent : "") + " (" + xhr.status + ")";
      button.disabled = false;
    });
    xhr.addEventListener("error", function () {
      status.textContent = "The upload failed: the connection was lost.";
      button.disabled = false;
    });
    xhr.send(file);
  });
})();
