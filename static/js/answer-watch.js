// An answer being written is generated on the server whatever the page does; the page only
// listens. Its stream (hx-sse:connect on the answer's body) reconnects by itself and resumes
// after the last event it got (htmx's SSE extension sends Last-Event-ID). This file tells the
// person while the stream is away, and restarts a stream that went silent without closing (a
// connection can die without either end noticing): the server sends a keepalive every
// STREAM_KEEPALIVE_SECONDS, so a long silence means the connection is gone.
(function () {
  "use strict";

  var SILENT_MS = 6000;  // several keepalives missed
  var CHECK_MS = 1000;

  // Streams the page has open: their element and when they last brought something.
  var heard = new Map();

  function article(elt) { return elt && elt.closest ? elt.closest("article.msg") : null; }

  function note(elt) {
    var owner = article(elt);
    if (!owner || owner.querySelector(".stream-lost")) return;
    var p = document.createElement("p");
    p.className = "msg-note stream-lost";
    p.setAttribute("role", "status");
    p.textContent = "The connection to this answer was lost; reconnecting… It goes on being written meanwhile.";
    owner.appendChild(p);
  }

  function unnote(elt) {
    var owner = article(elt);
    var lost = owner && owner.querySelector(".stream-lost");
    if (lost) lost.remove();
  }

  function isStream(elt) { return elt && elt.hasAttribute && elt.hasAttribute("hx-sse:connect"); }

  document.addEventListener("htmx:sse:after:connection", function (evt) {
    if (!isStream(evt.target)) return;
    heard.set(evt.target, performance.now());
    unnote(evt.target);
  });
  document.addEventListener("htmx:sse:after:message", function (evt) {
    if (heard.has(evt.target)) heard.set(evt.target, performance.now());
  });
  document.addEventListener("htmx:sse:error", function (evt) {
    if (!isStream(evt.target)) return;
    // htmx reconnects it, with a growing wait capped below SILENT_MS; a reconnect that neither
    // connects nor fails within SILENT_MS (a kept-alive connection to a machine that vanished)
    // is restarted like a silent stream.
    heard.set(evt.target, performance.now());
    note(evt.target);
  });
  document.addEventListener("htmx:sse:close", function (evt) { heard.delete(evt.target); });

  // A silent stream: start it again from the last event it got, in a fresh element (htmx
  // keeps one connection per element; the copy keeps what the page shows).
  function restart(elt) {
    heard.delete(elt);
    var connection = elt._htmx && elt._htmx.sse;
    var last = connection ? connection.lastEventId : "";
    var copy = elt.cloneNode(true);
    if (last) {
      var url = new URL(copy.getAttribute("hx-sse:connect"), window.location.href);
      url.searchParams.set("last", last);
      copy.setAttribute("hx-sse:connect", url.pathname + url.search);
    }
    note(elt);
    // Let go of the dead connection (removing the element alone would leave its read pending).
    if (connection) {
      try {
        if (connection.reader) connection.reader.cancel();
        if (connection.abortController) connection.abortController.abort();
      } catch (e) { /* already closed */ }
    }
    elt.replaceWith(copy);
    if (window.htmx) window.htmx.process(copy);
    // The copy is watched from now: if its request hangs too, it is restarted again (the
    // aborted request takes its dead connection with it, so the next one tries another).
    heard.set(copy, performance.now());
  }

  setInterval(function () {
    if (document.hidden) return;  // htmx drops streams of a hidden tab and reconnects them
    var now = performance.now();
    heard.forEach(function (when, elt) {
      if (!elt.isConnected) { heard.delete(elt); return; }
      if (now - when > SILENT_MS) restart(elt);
    });
  }, CHECK_MS);

  // Back from the background: htmx reconnects; the silence meanwhile was ours, not theirs.
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) return;
    var now = performance.now();
    heard.forEach(function (_, elt) { heard.set(elt, now); });
  });
})();
