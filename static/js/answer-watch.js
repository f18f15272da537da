// An answer whose stream breaks (its worker was killed, the network went) or falls silent must
// not look as if it were still being written. Then ask the server for the message as it stands
// (GET /m/<id>, which ends it once it is past its deadline) and show that: the final answer,
// "Interrupted" with Retry, or a running answer whose own stream then attaches again. Until
// the server answers, a note says so and offers a reload.
(function () {
  "use strict";

  var RUNNING = 'article.msg-assistant[data-status="pending"], article.msg-assistant[data-status="streaming"]';
  var SWEEP_MS = 2000;      // how often running answers are checked for a stream feeding them
  var FIRST_WAIT_MS = 500;  // before the first look: a broken stream's worker may still answer
  var MOST_WAIT_MS = 10000; // the longest wait between looks while the server is away
  // A stream that brought nothing for this long (it sends a keepalive every second or so,
  // which the page cannot see, and tokens or text at least every STREAM_SAVE_SECONDS while
  // the answer grows) may be a connection that died without closing: ask the server.
  var SILENT_MS = 10000;
  var LOOK_TIMEOUT_MS = 3000;

  // Elements whose request or event stream is open (the answer's body, or the composer that
  // posted the turn and streams its answer).
  var open = new Set();
  // Message ids being recovered, and how many looks each has had (for the back-off).
  var recovering = new Map();
  // When a stream last brought something (one running answer per conversation is shown).
  var lastNews = performance.now();
  var probing = false;

  function forget(elt) { open.delete(elt); }
  function news() { lastNews = performance.now(); }

  document.addEventListener("htmx:before:request", function (evt) { open.add(evt.target); });
  document.addEventListener("htmx:sse:after:connection", function (evt) { open.add(evt.target); news(); });
  document.addEventListener("htmx:sse:after:message", news);
  // A stream that ended or failed: what it fed is looked at now, not after a second sweep.
  document.addEventListener("htmx:sse:close", function (evt) { forget(evt.target); soon(true); });
  document.addEventListener("htmx:sse:error", function () { soon(true); });
  document.addEventListener("htmx:error", function (evt) { forget(evt.target); soon(true); });
  // An event stream holds its request open until the stream ends (the composer's only until
  // its first message): then this fires, and the stream's own close says the rest.
  document.addEventListener("htmx:finally:request", function (evt) {
    var connection = evt.target && evt.target._htmx && evt.target._htmx.sse;
    if (!connection) forget(evt.target);
    soon();
  });

  // Whether some open stream may be feeding ``article``: one inside it, or the composer's
  // (outside any answer); a page shows at most one running answer per conversation.
  function fed(article) {
    var found = false;
    open.forEach(function (elt) {
      if (!elt.isConnected) { open.delete(elt); return; }
      var owner = elt.closest ? elt.closest("article.msg") : null;
      if (owner === article || (!owner && elt.id === "composer")) found = true;
    });
    return found;
  }

  var queued = null;
  var urgent = false;
  function soon(now) {
    urgent = urgent || !!now;
    if (queued) return;
    queued = setTimeout(function () { queued = null; var u = urgent; urgent = false; sweep(u); }, 300);
  }

  function sweep(now) {
    document.querySelectorAll(RUNNING).forEach(function (article) {
      var id = article.id.replace(/^m-/, "");
      if (recovering.has(id)) return;
      if (fed(article)) {
        delete article.dataset.unfed;
        if (performance.now() - lastNews > SILENT_MS) probe(id);
        return;
      }
      // Otherwise seen without a stream twice in a row before acting (a stream may be just
      // starting), unless a stream has just ended or failed.
      if (!now && article.dataset.unfed !== "1") { article.dataset.unfed = "1"; return; }
      recover(id, FIRST_WAIT_MS);
    });
  }

  // The message as the server has it now: its new element, or null when it is gone (404).
  function fetchMessage(id) {
    var controller = new AbortController();
    var timer = setTimeout(function () { controller.abort(); }, LOOK_TIMEOUT_MS);
    return fetch("/m/" + id, { headers: { "HX-Request": "true" }, credentials: "same-origin",
                               signal: controller.signal })
      .then(function (response) {
        clearTimeout(timer);
        if (response.status === 404) return null;
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text().then(function (html) {
          var template = document.createElement("template");
          template.innerHTML = html.trim();
          var fresh = template.content.firstElementChild;
          if (!fresh || fresh.id !== "m-" + id) throw new Error("unexpected answer");
          return fresh;
        });
      }, function (error) { clearTimeout(timer); throw error; });
  }

  // Put ``fresh`` in the page in place of the answer: a final one shows how it ended (with
  // Retry); a running one's body opens its stream again (it follows the saved text).
  function show(fresh) {
    var current = document.getElementById(fresh.id);
    if (!current) return false;
    current.replaceWith(fresh);
    if (window.htmx) window.htmx.process(fresh);
    return true;
  }

  // A silent stream: if the server says the answer has ended, show that; else wait again.
  function probe(id) {
    if (probing) return;
    probing = true;
    news();
    fetchMessage(id).then(function (fresh) {
      if (fresh && !fresh.matches(RUNNING)) show(fresh);
      probing = false;
      news();
    }, function () {
      // No answer (the connection reused may be the silent worker's own): ask again soon.
      probing = false;
      lastNews = performance.now() - SILENT_MS + SWEEP_MS;
    });
  }

  function note(article) {
    if (!article || article.querySelector(".stream-lost")) return;
    var p = document.createElement("p");
    p.className = "msg-note stream-lost";
    p.setAttribute("role", "status");
    p.textContent = "The connection to this answer was lost; checking how it ended… ";
    var reload = document.createElement("a");
    reload.href = window.location.pathname + "#" + article.id;
    reload.textContent = "Reload";
    reload.addEventListener("click", function (evt) { evt.preventDefault(); window.location.reload(); });
    p.appendChild(reload);
    article.appendChild(p);
  }

  function recover(id, wait) {
    recovering.set(id, 1);
    note(document.getElementById("m-" + id));
    setTimeout(function () { look(id); }, wait);
  }

  function again(id) {
    var looks = recovering.get(id) || 1;
    recovering.set(id, looks + 1);
    setTimeout(function () { look(id); }, Math.min(FIRST_WAIT_MS * Math.pow(2, looks), MOST_WAIT_MS));
  }

  function look(id) {
    var article = document.getElementById("m-" + id);
    if (!article || !article.matches(RUNNING)) { recovering.delete(id); return; }
    if (fed(article)) {  // its stream attached again: it shows the answer from here on
      var lost = article.querySelector(".stream-lost");
      if (lost) lost.remove();
      recovering.delete(id);
      return;
    }
    fetchMessage(id).then(function (fresh) {
      if (!fresh || !show(fresh)) { recovering.delete(id); return; }
      if (fresh.matches(RUNNING)) {
        note(fresh);
        again(id);  // its stream is attaching; look again if it does not
      } else {
        recovering.delete(id);
      }
    }).catch(function () { again(id); });  // the server is not back yet: look again later
  }

  setInterval(function () { sweep(false); }, SWEEP_MS);
})();
