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

  function composerBox() { return document.getElementById("content"); }

  // Focus goes back to the composer when the control that had it is gone or disabled (Send
  // while the request runs, Stop when its answer is replaced), never to <body>.
  function refocusComposer() {
    var box = composerBox();
    var active = document.activeElement;
    if (box && (!active || active === document.body || !active.isConnected || active.disabled ||
                active.closest("#composer, .msg-actions"))) {
      box.focus();
    }
  }

  // The Stop form of the answer being written now, if there is one.
  function runningStop() {
    var forms = document.querySelectorAll("#messages .msg-assistant .msg-actions:not(.retry)");
    return forms.length ? forms[forms.length - 1] : null;
  }

  var sending = false;  // a message is on its way: Enter must not send it twice

  document.addEventListener("keydown", function (evt) {
    var box = evt.target;
    if (box.id !== "content" || evt.isComposing) return;
    // Esc in the composer stops the answer being written (its Stop button does the same).
    if (evt.key === "Escape") {
      var stop = runningStop();
      if (stop) {
        evt.preventDefault();
        stop.requestSubmit();
      }
      return;
    }
    // Enter sends, Shift+Enter is a new line (not while composing with an IME).
    if (evt.key !== "Enter" || evt.shiftKey) return;
    evt.preventDefault();
    if (box.value.trim() && !sending) box.form.requestSubmit();
  });

  function fromComposer(evt) {
    var ctx = evt.detail && evt.detail.ctx;
    var form = ctx && ctx.sourceElement;
    return form && form.id === "composer" ? ctx : null;
  }

  document.addEventListener("htmx:before:request", function (evt) {
    if (fromComposer(evt)) sending = true;
  });

  // A message is accepted when its request succeeds. An answer that streams in the same
  // response never fires htmx:after:request (the SSE extension takes the response over):
  // htmx:finally:request comes once the first event (the turn) has been swapped in, for a
  // stream and a plain answer alike. Accepted: empty the composer and clear an old error; an
  // error keeps the text. Either way the composer keeps the focus.
  document.addEventListener("htmx:finally:request", function (evt) {
    var ctx = fromComposer(evt);
    if (!ctx) {
      var source = evt.detail && evt.detail.ctx && evt.detail.ctx.sourceElement;
      if (source && source.closest && source.closest(".msg-actions")) refocusComposer();
      return;
    }
    sending = false;
    var status = ctx.response ? ctx.response.status : 0;
    if (status >= 200 && status < 300) {
      var box = composerBox();
      if (box) box.value = "";  // not form.reset(): that would bring back a refused draft
      var error = document.getElementById("composer-error");
      if (error) error.textContent = "";
      var welcome = document.querySelector(".welcome");
      if (welcome) welcome.remove();
    }
    refocusComposer();
  });

  // A conversation menu's form (Chat settings, its reset) is replaced by the answer to its
  // request: the button that had the focus is gone, and the focus would fall to <body>. Put it
  // on the first field the answer refused, else on the menu's Save button.
  var menuOfRequest = null;
  document.addEventListener("htmx:before:request", function (evt) {
    var source = evt.detail && evt.detail.ctx && evt.detail.ctx.sourceElement;
    var menu = source && source.closest && source.closest("details.tool-menu[id]");
    menuOfRequest = menu ? menu.id : null;
  });
  document.addEventListener("htmx:finally:request", function () {
    var id = menuOfRequest;
    menuOfRequest = null;
    if (!id) return;
    setTimeout(function () {
      var active = document.activeElement;
      if (active && active !== document.body && active.isConnected) return;
      var menu = document.getElementById(id);
      var target = menu && (menu.querySelector("[aria-invalid=true]") ||
                            menu.querySelector(".popover form button[type=submit]:not(.link)"));
      if (target) target.focus();
    }, 0);
  });

  // A message's controls (a version button, Regenerate, Continue, Save and send) replace the
  // messages or the message they act on: the control that had the focus is gone. Put it on
  // the control of the same name in the message at the same place, so "Next version" can be
  // pressed again and again; else on that message's first control; else the composer.
  var controlOfRequest = null;
  document.addEventListener("htmx:before:request", function (evt) {
    var source = evt.detail && evt.detail.ctx && evt.detail.ctx.sourceElement;
    var form = source && source.closest && source.closest(".msg-tools form, form.edit-form");
    var article = form && form.closest("article.msg");
    if (!article) { controlOfRequest = null; return; }
    var button = form.querySelector("button");
    controlOfRequest = {
      place: Array.prototype.indexOf.call(document.querySelectorAll("#messages article.msg"), article),
      label: button ? (button.getAttribute("aria-label") || button.textContent.trim()) : ""
    };
  });
  document.addEventListener("htmx:finally:request", function () {
    var was = controlOfRequest;
    controlOfRequest = null;
    if (!was) return;
    setTimeout(function () {
      var active = document.activeElement;
      if (active && active !== document.body && active.isConnected) return;
      var article = document.querySelectorAll("#messages article.msg")[was.place];
      var buttons = article ? Array.prototype.filter.call(
        article.querySelectorAll(".msg-tools button, .msg-actions button"),
        function (b) { return !b.disabled; }) : [];
      var same = buttons.filter(function (b) {
        return (b.getAttribute("aria-label") || b.textContent.trim()) === was.label;
      });
      var target = same[0] || buttons[0];
      if (target) target.focus();
      else refocusComposer();
    }, 0);
  });

  // An answer's bubble is replaced when it ends: if its Stop button had the focus, the
  // focus would fall to <body>.
  document.addEventListener("focusout", function (evt) {
    var from = evt.target;
    if (!from.closest || !from.closest(".msg-actions")) return;
    setTimeout(function () {
      if (!from.isConnected && document.activeElement === document.body) refocusComposer();
    }, 0);
  });

  // -- The sidebar: a drawer on a phone ------------------------------------------------------
  function drawerOpen() { return document.body.classList.contains("sidebar-open"); }

  function setDrawer(open, restoreFocus) {
    var toggle = document.querySelector(".menu-toggle");
    var sidebar = document.getElementById("sidebar");
    if (!toggle || !sidebar) return;
    document.body.classList.toggle("sidebar-open", open);
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) sidebar.focus();
    else if (restoreFocus) toggle.focus();
  }

  // The drawer only exists while the toggle is shown (narrow screens).
  function isDrawer() {
    var toggle = document.querySelector(".menu-toggle");
    return !!toggle && toggle.offsetParent !== null;
  }

  document.addEventListener("click", function (evt) {
    var target = evt.target;
    if (target.closest(".menu-toggle")) {
      setDrawer(!drawerOpen(), true);
    } else if (drawerOpen() && target.closest(".backdrop")) {
      setDrawer(false, true);
    } else if (drawerOpen() && target.closest("#sidebar a[href]")) {
      // Choosing a conversation closes the drawer (also for the page kept by Back).
      setDrawer(false, false);
    }
  });

  // The open drawer covers the page: Tab and Shift+Tab go round its controls instead of
  // wandering to the controls hidden behind the backdrop.
  document.addEventListener("keydown", function (evt) {
    if (evt.key !== "Tab" || !drawerOpen() || !isDrawer()) return;
    var sidebar = document.getElementById("sidebar");
    var controls = Array.prototype.filter.call(
      sidebar.querySelectorAll("a[href], button:not([disabled]), input, [tabindex]:not([tabindex='-1'])"),
      function (el) { return el.offsetParent !== null; });
    if (!controls.length) return;
    var first = controls[0], last = controls[controls.length - 1];
    var inside = sidebar.contains(document.activeElement);
    if (evt.shiftKey && (!inside || document.activeElement === first || document.activeElement === sidebar)) {
      evt.preventDefault();
      last.focus();
    } else if (!evt.shiftKey && (!inside || document.activeElement === last)) {
      evt.preventDefault();
      first.focus();
    }
  });

  // -- Search as you type --------------------------------------------------------------------
  function clearSearch(box) {
    box.value = "";
    var results = document.getElementById("search-results");
    if (results) results.innerHTML = "";
  }

  document.addEventListener("input", function (evt) {
    // An emptied box brings the list back at once (no request, no wait).
    if (evt.target.id === "q" && !evt.target.value.trim()) clearSearch(evt.target);
  });

  // A late answer for a query that has since been emptied must not hide the list again.
  document.addEventListener("htmx:before:swap", function (evt) {
    var ctx = evt.detail && evt.detail.ctx;
    var box = document.getElementById("q");
    if (ctx && ctx.sourceElement === box && box && !box.value.trim()) evt.preventDefault();
  });

  document.addEventListener("keydown", function (evt) {
    if (evt.key !== "Escape" || evt.isComposing) return;
    var target = evt.target;
    // Esc in a search with text empties it first; the next Esc closes the drawer.
    if (target.id === "q" && target.value) {
      evt.preventDefault();
      clearSearch(target);
      return;
    }
    if (drawerOpen() && isDrawer()) {
      evt.preventDefault();
      setDrawer(false, true);
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
  });
})();
