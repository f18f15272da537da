// An answer whose stream breaks (its worker was killed, the network went) must not look as if
// it were still being written. When no stream feeds a running answer any more, ask the server
// for the message as it stands (GET /m/<id>, which ends it once it is past its deadline) and
// show that: the final answer, "Interrupted" with Retry, or a running answer whose own stream
// then attaches again. Until the server answers, a note says so and offers a reload.
(function () {
  "use strict";

  var RUNNING = 'article.msg-assistant[data-status="pending"], article.msg-assistant[data-status="streaming"]';
  var SWEEP_MS = 2000;     // how often running answers are checked for a stream feeding them
  var FIRST_WAIT_MS = 500; // before the first look: a broken stream's worker may still answer
  var MOST_WAIT_MS = 10000;

  // Elements whose request or event stream is open (the answer's body, or the composer that
  // posted the turn and streams its answer).
  var open = new Set();
  // Message ids being recovered, and how many looks each has had (for the back-off).
  var recovering = new Map();

  function forget(elt) { open.delete(elt); }

  document.addEventListener("htmx:before:request", function (evt) { open.add(evt.target); });
  document.addEventListener("htmx:sse:after:connection", function (evt) { open.add(evt.target); });
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

  // Whether some open stream may be feeding ``article``: one inside it, or one outside any
  // answer (the composer's); a page shows at most one running answer per conversation.
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
    queued = setTimeout(function () { queued = null; sweep(urgent); urgent = false; }, 300);
  }

  function sweep(now) {
    document.querySelectorAll(RUNNING).forEach(function (article) {
      var id = article.id.replace(/^m-/, "");
      if (recovering.has(id)) return;
      if (fed(article)) { delete article.dataset.unfed; return; }
      // Otherwise seen without a stream twice in a row before acting (a stream may be just
      // starting), unless a stream has just ended or failed.
      if (!now && article.dataset.unfed !== "1") { article.dataset.unfed = "1"; return; }
      recover(id, FIRST_WAIT_MS);
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
    var looks = (recovering.get(id) || 0) + 1;
    recovering.set(id, looks);
    note(document.getElementById("m-" + id));
    setTimeout(function () { look(id); }, wait);
  }

  function again(id) {
    var looks = recovering.get(id) || 1;
    setTimeout(function () { look(id); }, Math.min(FIRST_WAIT_MS * Math.pow(2, looks), MOST_WAIT_MS));
    recovering.set(id, looks + 1);
  }

  function look(id) {
    var article = document.getElementById("m-" + id);
    if (!article || !article.matches(RUNNING) || fed(article)) { recovering.delete(id); return; }
    fetch("/m/" + id, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 404) { recovering.delete(id); return null; }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        if (html === null) return;
        var current = document.getElementById("m-" + id);
        if (!current) { recovering.delete(id); return; }
        var template = document.createElement("template");
        template.innerHTML = html.trim();
        var fresh = template.content.firstElementChild;
        if (!fresh || fresh.id !== current.id) throw new Error("unexpected answer");
        var running = fresh.matches(RUNNING);
        current.replaceWith(fresh);
        // A running answer's body opens its stream again (it follows the saved text); a
        // final one shows how it ended, with Retry.
        if (window.htmx) window.htmx.process(fresh);
        if (running) {
          note(fresh);
          again(id);
        } else {
          recovering.delete(id);
        }
      })
      .catch(function () { again(id); });  // the server is not back yet: look again later
  }

  setInterval(function () { sweep(false); }, SWEEP_MS);
})();
