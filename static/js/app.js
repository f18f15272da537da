// Small behaviours htmx does not cover. No inline scripts: the CSP forbids them.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // Every htmx request carries the CSRF token (forms have it too; buttons may not).
  document.addEventListener("htmx:config:request", function (evt) {
    evt.detail.ctx.request.headers["X-CSRFToken"] = csrfToken();
  });

  // Enter sends, Shift+Enter is a new line (not while composing with an IME).
  document.addEventListener("keydown", function (evt) {
    var box = evt.target;
    if (box.id !== "content" || evt.key !== "Enter" || evt.shiftKey || evt.isComposing) return;
    evt.preventDefault();
    if (box.value.trim()) box.form.requestSubmit();
  });

  // After a message is accepted, empty the composer; on an error keep the text.
  document.addEventListener("htmx:after:request", function (evt) {
    var ctx = evt.detail.ctx;
    var form = ctx && ctx.sourceElement;
    if (!form || form.id !== "composer" || !ctx.response) return;
    if (ctx.response.status === 200) {
      form.reset();
      var error = document.getElementById("composer-error");
      if (error) error.textContent = "";
      var welcome = document.querySelector(".welcome");
      if (welcome) welcome.remove();
    }
  });

  // Keep the newest text in view while an answer streams, unless the person scrolled up.
  var stick = true;
  function scroller() { return document.scrollingElement || document.documentElement; }
  window.addEventListener("scroll", function () {
    var s = scroller();
    stick = s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }, { passive: true });
  // At most every 100 ms, in a frame: scrolling repaints the whole view, and an answer
  // streaming in changes the page up to 30 times a second (each scroll costs more than the
  // text it shows).
  var queued = false;
  var lastScroll = 0;
  function follow() {
    if (!stick || queued) return;
    queued = true;
    setTimeout(function () {
      requestAnimationFrame(function () {
        queued = false;
        lastScroll = performance.now();
        var s = scroller();
        s.scrollTop = s.scrollHeight;
      });
    }, Math.max(0, 100 - (performance.now() - lastScroll)));
  }
  document.addEventListener("DOMContentLoaded", function () {
    var messages = document.getElementById("messages");
    if (messages) {
      new MutationObserver(follow).observe(messages, { childList: true, subtree: true, characterData: true });
      follow();
    }
    var toggle = document.querySelector(".menu-toggle");
    if (toggle) {
      toggle.addEventListener("click", function () {
        var open = document.body.classList.toggle("sidebar-open");
        toggle.setAttribute("aria-expanded", open ? "true" : "false");
      });
    }
  });
})();
