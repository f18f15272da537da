// Copy buttons (messages, code blocks, a new API key), keyboard shortcuts, the announcement of
// a finished answer and the keys of the edit box. Every control here needs JavaScript, so
// JavaScript adds it: a page without it shows no button that cannot work. No inline scripts or
// handlers: the CSP forbids them.
(function () {
  "use strict";

  var FEEDBACK_MS = 1500;   // how long a Copy button says "Copied"
  var SPOKEN_CHARS = 300;   // a finished answer is read out up to about this many characters
  var FINAL = { complete: true, stopped: true, error: true };

  function all(root, selector) {
    var found = Array.prototype.slice.call(root.querySelectorAll(selector));
    if (root.matches(selector)) found.unshift(root);
    return found;
  }

  function isField(el) {
    return !!el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }

  // -- Announcements ---------------------------------------------------------------------------
  // One polite live region (page.html has it; other pages get one made here, at load: a region
  // must exist before it changes to be read).
  function announcer() {
    var region = document.getElementById("announcer");
    if (!region) {
      region = document.createElement("div");
      region.id = "announcer";
      region.className = "visually-hidden";
      region.setAttribute("aria-live", "polite");
      region.setAttribute("aria-atomic", "true");
      document.body.appendChild(region);
    }
    return region;
  }

  var announceTimer = 0;
  function announce(words) {
    var region = announcer();
    clearTimeout(announceTimer);
    region.textContent = "";
    // Emptied, then filled a moment later: the same words twice in a row are read twice.
    announceTimer = setTimeout(function () { region.textContent = words; }, 50);
  }

  // An answer's text as it reads (without the code blocks' Copy headers), cut at a word.
  function spokenText(article) {
    var body = article.querySelector(":scope > .msg-body");
    if (!body) return "";
    var copy = body.cloneNode(true);
    copy.querySelectorAll(".code-head").forEach(function (head) { head.remove(); });
    var text = copy.textContent.replace(/\s+/g, " ").trim();
    if (text.length > SPOKEN_CHARS) text = text.slice(0, SPOKEN_CHARS).replace(/\s+\S*$/, "") + "…";
    return text;
  }

  function finishedWords(article, status) {
    // A failed answer's reason is an alert of its own (role=alert), read when it appears.
    if (status === "error") return "Answer failed.";
    return (status === "stopped" ? "Answer stopped: " : "Answer finished: ") + spokenText(article);
  }

  // The answers this page has seen being written: each is announced once, when its final HTML
  // replaces it. (A whole conversation swapped in, or a page loaded, announces nothing.)
  var running = new Set();

  function track(root) {
    all(root, "article.msg-assistant[id]").forEach(function (article) {
      var status = article.getAttribute("data-status");
      if (!FINAL[status]) running.add(article.id);
      else if (running.delete(article.id)) announce(finishedWords(article, status));
    });
  }

  // -- Copy ------------------------------------------------------------------------------------
  // Where the Clipboard API is missing (a page served over plain http) or refused (a
  // permission, an unfocused document), a selected hidden textarea and the copy command.
  function copyByCommand(text) {
    var focused = document.activeElement;
    var area = document.createElement("textarea");
    area.className = "copy-buffer";
    area.value = text;
    area.setAttribute("readonly", "");
    area.setAttribute("aria-hidden", "true");
    area.tabIndex = -1;
    (document.querySelector("dialog[open]") || document.body).appendChild(area);
    area.select();
    var done = false;
    try {
      done = document.execCommand("copy");
    } catch (e) {
      done = false;
    }
    area.remove();
    if (focused && focused.isConnected && focused.focus) focused.focus({ preventScroll: true });
    return done;
  }

  function writeClipboard(text) {
    if (navigator.clipboard && navigator.clipboard.writeText) {
      return navigator.clipboard.writeText(text).then(
        function () { return true; },
        function () { return copyByCommand(text); });
    }
    return Promise.resolve(copyByCommand(text));
  }

  function feedback(button, copied) {
    announce(copied ? "Copied" : "Could not copy");
    if (!button) return;
    clearTimeout(button.copyTimer);
    button.textContent = copied ? "Copied" : "Copy failed";
    button.classList.toggle("copied", copied);
    button.copyTimer = setTimeout(function () {
      button.textContent = "Copy";
      button.classList.remove("copied");
    }, FEEDBACK_MS);
  }

  function copy(text, button) {
    writeClipboard(text).then(function (copied) { feedback(button, copied); });
  }

  // A message's markdown source: the inert <template class="msg-source"> the server adds to
  // every finished message.
  function messageSource(article) {
    var source = article.querySelector(":scope > template.msg-source");
    return source ? source.content.textContent : null;
  }

  function codeText(block) {
    var pre = block.querySelector("pre");
    var code = pre.querySelector("code") || pre;
    return code.textContent.replace(/\n$/, "");  // a fence's code ends with its line's newline
  }

  function copyButton(kind) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "copy " + kind;
    button.textContent = "Copy";
    return button;
  }

  // Copy goes in the message's toolbar, after its versions; a message without a toolbar (a
  // shared snapshot's) gets one, before its details.
  function addMessageCopy(article) {
    if (messageSource(article) === null || article.querySelector(":scope > .msg-tools > .copy-message")) return;
    var tools = article.querySelector(":scope > .msg-tools");
    if (!tools) {
      tools = document.createElement("div");
      tools.className = "msg-tools";
      article.insertBefore(tools, article.querySelector(":scope > .msg-info"));
    }
    var versions = tools.querySelector(":scope > nav.versions");
    tools.insertBefore(copyButton("copy-message"), versions ? versions.nextSibling : tools.firstChild);
  }

  // A code block gets a header: its language, if the fence named one, and Copy.
  function addCodeCopy(pre) {
    if (pre.parentElement.classList.contains("code-block")) return;
    var block = document.createElement("div");
    block.className = "code-block";
    var head = document.createElement("div");
    head.className = "code-head";
    var code = pre.querySelector("code");
    var lang = code && /(?:^|\s)language-(\S+)/.exec(code.className);
    var label = document.createElement("span");
    label.className = "code-lang";
    label.textContent = lang ? lang[1] : "";
    head.append(label, copyButton("copy-code"));
    pre.before(block);
    block.append(head, pre);
  }

  // A read-only field to copy whole (a new API key, shown once): Copy beside it.
  function addFieldCopy(wrapper) {
    if (wrapper.querySelector(":scope > button.copy-value")) return;
    wrapper.appendChild(copyButton("copy-value secondary"));
  }

  function enhance(root) {
    all(root, "article.msg").forEach(addMessageCopy);
    all(root, ".msg-body pre").forEach(addCodeCopy);
    all(root, ".copy-field").forEach(addFieldCopy);
  }

  document.addEventListener("click", function (evt) {
    var button = evt.target.closest && evt.target.closest("button.copy");
    if (!button) return;
    if (button.classList.contains("copy-code")) {
      copy(codeText(button.closest(".code-block")), button);
    } else if (button.classList.contains("copy-value")) {
      copy(button.closest(".copy-field").querySelector("input").value, button);
    } else {
      var text = messageSource(button.closest("article.msg"));
      if (text !== null) copy(text, button);
    }
  });

  // -- Keyboard shortcuts ----------------------------------------------------------------------
  function composerBox() { return document.getElementById("content"); }

  function lastOf(selector) {
    var found = document.querySelectorAll(selector);
    return found.length ? found[found.length - 1] : null;
  }

  function openShortcuts() {
    var dialog = document.getElementById("shortcuts");
    if (dialog && !dialog.open) dialog.showModal();
    return !!dialog;
  }

  function newChat() {
    var link = document.querySelector("a.new-chat");
    if (link) link.click();
    return !!link;
  }

  function focusComposer() {
    var box = composerBox();
    if (box) box.focus();
    return !!box;
  }

  function copyLastAnswer() {
    if (!document.getElementById("composer")) return false;  // not a conversation page
    var answers = Array.prototype.filter.call(
      document.querySelectorAll("#messages article.msg-assistant"),
      function (article) { return messageSource(article) !== null; });
    var last = answers[answers.length - 1];
    if (!last) {
      announce("No answer to copy yet");
      return true;
    }
    copy(messageSource(last), last.querySelector(".copy-message"));
    return true;
  }

  // The Stop form of the answer being written now (as app.js finds it).
  function stopRunning() {
    var stop = lastOf("#messages .msg-assistant .msg-actions:not(.retry)");
    if (stop) stop.requestSubmit();
    return !!stop;
  }

  // The person's last message: its Edit button, or its edit box when it is open already.
  function editLast() {
    var last = lastOf("#messages .msg-user");
    var control = last && (last.querySelector("button.edit") || last.querySelector("form.edit-form textarea"));
    if (!control) return false;
    if (control.tagName === "BUTTON") control.click();
    else control.focus();
    return true;
  }

  function ctrlShift(evt) {
    return (evt.ctrlKey || evt.metaKey) && evt.shiftKey && !evt.altKey;
  }

  // A letter by what it types (a layout's own letters), by its place on the keyboard where
  // the layout has no Latin letters.
  function letter(evt, which) {
    var key = evt.key && evt.key.length === 1 ? evt.key.toLowerCase() : "";
    return /^[a-z]$/.test(key) ? key === which : evt.code === "Key" + which.toUpperCase();
  }

  // With a modifier: they work wherever the focus is, in a text field too. Chromium lets a
  // page take these (its reserved keys are Ctrl+N, T, W, Shift+N, Shift+T, Shift+W, Tab).
  // Ctrl+Shift+O is ChatGPT's "New chat", Shift+Esc its "Focus the message box" and
  // Ctrl+Shift+C its "Copy the last answer"; over Chromium's bookmark manager, task manager
  // and element picker, which have other ways in.
  var GLOBAL = [
    { match: function (evt) { return ctrlShift(evt) && letter(evt, "o"); }, run: newChat },
    { match: function (evt) { return ctrlShift(evt) && letter(evt, "c"); }, run: copyLastAnswer },
    { match: function (evt) { return evt.key === "Escape" && evt.shiftKey && !evt.ctrlKey && !evt.metaKey && !evt.altKey; },
      run: focusComposer },
    { match: function (evt) { return (evt.ctrlKey || evt.metaKey) && !evt.shiftKey && !evt.altKey && (evt.key === "/" || evt.code === "Slash"); },
      run: openShortcuts },
  ];

  // In the capture phase, before app.js: Shift+Esc in the composer must only focus it, not
  // stop the answer as Esc there does.
  window.addEventListener("keydown", function (evt) {
    if (evt.isComposing) return;
    for (var i = 0; i < GLOBAL.length; i++) {
      if (GLOBAL[i].match(evt) && GLOBAL[i].run()) {
        evt.preventDefault();
        evt.stopPropagation();
        return;
      }
    }
  }, true);

  function plain(evt) {
    return !evt.ctrlKey && !evt.metaKey && !evt.altKey && !evt.isComposing;
  }

  // Esc outside a text field stops the answer being written (in the composer app.js does it),
  // unless it closes something first: a dialog, the drawer (app.js), an open menu.
  function escapeStops(evt) {
    return evt.key === "Escape" && plain(evt) && !evt.shiftKey && !isField(evt.target) &&
      !document.querySelector("dialog[open]") && !(evt.target.closest && evt.target.closest("details[open]"));
  }

  document.addEventListener("keydown", function (evt) {
    if (evt.defaultPrevented) return;
    var target = evt.target;
    var handled = false;
    if (evt.key === "?" && plain(evt) && !isField(target)) {
      handled = openShortcuts();
    } else if (escapeStops(evt)) {
      handled = stopRunning();
    } else if (evt.key === "ArrowUp" && plain(evt) && !evt.shiftKey && target === composerBox() && target.value === "") {
      handled = editLast();
    } else if (target.matches && target.matches("form.edit-form textarea")) {
      handled = editKeys(evt, target);
    }
    if (handled) evt.preventDefault();
  });

  // -- The edit box --------------------------------------------------------------------------
  // Enter saves and sends, Shift+Enter is a new line, Esc cancels (its Cancel link).
  function editKeys(evt, box) {
    if (!plain(evt)) return false;
    var form = box.form;
    if (evt.key === "Enter" && !evt.shiftKey) {
      var send = form.querySelector("button[type=submit]");
      if (box.value.trim() && !(send && send.disabled)) form.requestSubmit();
      return true;
    }
    if (evt.key === "Escape" && !evt.shiftKey) {
      var cancel = form.querySelector(".edit-buttons a");
      if (cancel) cancel.click();
      return !!cancel;
    }
    return false;
  }

  // An edit box opens with the caret after the text, where one goes on typing.
  document.addEventListener("focusin", function (evt) {
    var box = evt.target;
    if (!box.matches || !box.matches("form.edit-form textarea") || box.dataset.placed) return;
    box.dataset.placed = "1";
    box.setSelectionRange(box.value.length, box.value.length);
  });

  // -- The shortcuts dialog ----------------------------------------------------------------------
  document.addEventListener("click", function (evt) {
    if (evt.target.closest && evt.target.closest(".shortcuts-open")) openShortcuts();
  });

  function showShortcutsButton() {
    document.querySelectorAll(".shortcuts-hint[hidden]").forEach(function (hint) { hint.hidden = false; });
    // On a Mac the modifier is ⌘.
    if (/Mac|iPhone|iPad/.test(navigator.platform || "")) {
      document.querySelectorAll("#shortcuts kbd.mod").forEach(function (key) { key.textContent = "⌘"; });
    }
  }

  // -- Start -----------------------------------------------------------------------------------
  // A MutationObserver rather than htmx's swap events: htmx fires those per swap, on targets
  // that differ by kind (a stream's body, an out-of-band swap's target, the detached element
  // an out-of-band swap replaced), and answer-watch.js restarts a stream by cloning its
  // element without any swap. The observer sees every insertion, whatever made it.
  function start() {
    announcer();
    showShortcutsButton();
    enhance(document.body);
    track(document.body);
    new MutationObserver(function (records) {
      records.forEach(function (record) {
        record.addedNodes.forEach(function (node) {
          if (node.nodeType !== 1 || !node.isConnected) return;
          track(node);  // before enhance: its words are read from the answer as sent
          enhance(node);
        });
      });
    }).observe(document.body, { childList: true, subtree: true });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
