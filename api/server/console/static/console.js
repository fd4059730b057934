// StreetWatch review console: keyboard triage and the live queue. No dependencies.
(function () {
  "use strict";
  var body = document.body;
  var csrf = body.dataset.csrf;
  var page = body.dataset.page;

  function typing(e) {
    var el = e.target;
    return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT");
  }

  // -- the reject dialog (queue and case page) ------------------------------------------
  var dialog = document.getElementById("reject-dialog");
  var rejectForm = document.getElementById("reject-form");

  function syncSuppress() {
    var r = rejectForm.querySelector("input[name=reason]:checked");
    var box = rejectForm.querySelector(".suppress-options");
    box.hidden = !(r && (r.value === "permitted" || r.value === "fixture"));
  }

  function openReject(action, next, expected, caseId) {
    if (!dialog) return;
    rejectForm.action = action;
    rejectForm.elements.next.value = next;
    rejectForm.elements.expected.value = expected;
    document.getElementById("reject-case").textContent = caseId;
    syncSuppress();
    dialog.showModal();
    var checked = rejectForm.querySelector("input[name=reason]:checked");
    if (checked) checked.focus();
  }

  if (dialog) {
    rejectForm.addEventListener("change", syncSuppress);
    document.getElementById("reject-cancel").addEventListener("click", function () {
      dialog.close();
    });
    dialog.addEventListener("keydown", function (e) {
      if (e.target.type === "text" || e.target.type === "date") {
        if (e.key === "Enter") { e.preventDefault(); rejectForm.requestSubmit(); }
        return;
      }
      var n = parseInt(e.key, 10);
      var radios = rejectForm.querySelectorAll("input[name=reason]");
      if (n >= 1 && n <= radios.length) {
        radios[n - 1].checked = true;
        radios[n - 1].focus();
        syncSuppress();
        e.preventDefault();
      } else if (e.key === "Enter") {
        e.preventDefault();
        rejectForm.requestSubmit();
      }
    });
  }

  // -- the queue ------------------------------------------------------------------------
  var selected = 0;

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("#cases tbody tr"));
  }

  function select(i, scroll) {
    var all = rows();
    if (!all.length) return;
    selected = Math.max(0, Math.min(i, all.length - 1));
    all.forEach(function (r, j) { r.classList.toggle("sel", j === selected); });
    if (scroll !== false) all[selected].scrollIntoView({ block: "nearest" });
    try {
      sessionStorage.setItem("sw-sel", all[selected].dataset.case);
      sessionStorage.setItem("sw-sel-i", String(selected));
    } catch (e) { /* private mode */ }
  }

  function current() {
    return rows()[selected];
  }

  function queueUrl() {
    return location.pathname + location.search;
  }

  function act(row, name) {
    var form = document.getElementById("act-form");
    form.action = "/console/cases/" + encodeURIComponent(row.dataset.case) + "/" + name;
    form.elements.next.value = queueUrl();
    form.elements.expected.value = row.dataset.status;
    form.submit();
  }

  function restoreSelection() {
    // The same case if it is still listed, else the one now in its place: after a verdict
    // the reviewer goes on with the next case.
    var id = null, at = selected;
    try {
      id = sessionStorage.getItem("sw-sel");
      at = parseInt(sessionStorage.getItem("sw-sel-i") || "0", 10) || 0;
    } catch (e) { /* private mode */ }
    var all = rows();
    var i = all.findIndex(function (r) { return r.dataset.case === id; });
    select(i >= 0 ? i : Math.min(at, all.length - 1), false);
  }

  function bindRows() {
    rows().forEach(function (r, i) {
      r.addEventListener("click", function (e) {
        if (e.target.tagName === "A") return;
        select(i);
      });
      r.addEventListener("dblclick", function () { location.href = r.dataset.href; });
    });
  }

  if (page === "queue" && document.getElementById("queue")) {
    bindRows();
    restoreSelection();
    var queue = document.getElementById("queue");
    var latest = parseInt(queue.dataset.latest, 10) || 0;
    // A session that ended (signed out elsewhere, key revoked, idle) answers 401: the tab
    // goes to the sign-in page, which says so and brings the reviewer back here after,
    // rather than showing a queue that looks live but no longer follows anything.
    var signedOut = function (r) {
      if (r.status !== 401) return false;
      clearInterval(timer);
      location.href = "/console/login?ended=1&next=" + encodeURIComponent(queueUrl());
      return true;
    };
    var poll = function () {
      fetch("/console/changes", { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" })
        .then(function (r) { return signedOut(r) || !r.ok ? null : r.json(); })
        .then(function (data) {
          if (!data || data.latest <= latest) return;
          latest = data.latest;
          return fetch("/console/queue/fragment?" + queue.dataset.query, {
            headers: { "X-Requested-With": "fetch" }, credentials: "same-origin"
          }).then(function (r) { return signedOut(r) || !r.ok ? null : r.text(); }).then(function (html) {
            if (html === null) return;
            var before = rows().length;
            queue.innerHTML = html;
            bindRows();
            restoreSelection();
            if (rows().length > before) {
              var live = document.getElementById("live");
              live.hidden = false;
              setTimeout(function () { live.hidden = true; }, 8000);
            }
          });
        })
        .catch(function () { /* offline: try again later */ });
    };
    var timer = setInterval(poll, 3000);

    document.addEventListener("keydown", function (e) {
      if (typing(e) || e.ctrlKey || e.metaKey || e.altKey || (dialog && dialog.open)) return;
      var row = current();
      var allowed = row ? row.dataset.allowed.split(" ") : [];
      switch (e.key) {
        case "j": case "ArrowDown": select(selected + 1); break;
        case "k": case "ArrowUp": select(selected - 1); break;
        case "Enter": case "o": if (row) location.href = row.dataset.href; break;
        case "a": if (row && allowed.indexOf("accepted") >= 0) act(row, "accept"); break;
        case "r":
          if (row && allowed.indexOf("rejected") >= 0) {
            openReject("/console/cases/" + encodeURIComponent(row.dataset.case) + "/reject",
              queueUrl(), row.dataset.status, row.dataset.case);
          }
          break;
        default: return;
      }
      e.preventDefault();
    });
  }

  // -- a case ---------------------------------------------------------------------------
  var bar = document.getElementById("casebar");
  if (bar) {
    var target = document.getElementById("reject-target");
    var rejectButton = document.getElementById("do-reject");
    var startReject = function () {
      if (rejectButton.disabled) return;
      openReject(target.dataset.action, target.dataset.next, target.dataset.expected, bar.dataset.case);
    };
    rejectButton.addEventListener("click", startReject);
    document.addEventListener("keydown", function (e) {
      if (typing(e) || e.ctrlKey || e.metaKey || e.altKey || (dialog && dialog.open)) return;
      var go = function (url) { if (url) location.href = url; };
      if (e.key === "j" || e.key === "ArrowRight") go(bar.dataset.next);
      else if (e.key === "k" || e.key === "ArrowLeft") go(bar.dataset.prev);
      else if (e.key === "u" || e.key === "Escape") go(bar.dataset.back);
      else if (e.key === "r") startReject();
      else if (e.key === "d") { var sel = document.getElementById("duplicate-of"); if (sel && !sel.disabled) sel.focus(); }
      else if (e.key === "p") { var note = document.getElementById("dispatch-note"); if (!document.getElementById("do-dispatch").disabled) note.focus(); }
      else {
        var form = document.querySelector("form.act[data-key='" + e.key + "']");
        var button = form && form.querySelector("button");
        if (!button || button.disabled) return;
        form.submit();
      }
      e.preventDefault();
    });
    // The duplicate picker shows the chosen candidate's picture and whole id.
    var picker = document.getElementById("duplicate-of");
    var preview = document.getElementById("duplicate-preview");
    if (picker && preview) picker.addEventListener("change", function () {
      var opt = picker.options[picker.selectedIndex];
      var figure = preview.querySelector("figure");
      figure.innerHTML = "";
      if (opt.dataset.img) {
        var img = document.createElement("img");
        img.src = "/console/evidence/" + opt.dataset.img;
        img.alt = "";
        figure.appendChild(img);
      }
      var link = preview.querySelector("a.id");
      link.textContent = opt.value;
      link.href = "/console/cases/" + encodeURIComponent(opt.value);
    });
    // In the duplicate picker and the dispatch note, Enter submits.
    ["duplicate-of", "dispatch-note"].forEach(function (id) {
      var el = document.getElementById(id);
      if (el) el.addEventListener("keydown", function (e) {
        if (e.key === "Enter") { e.preventDefault(); el.form.requestSubmit(); }
        if (e.key === "Escape") { el.blur(); }
      });
    });
  }

  // The corrected box drawn by dragging on an evidence image: the drag's corners, in image
  // pixels, fill the typed form (the fallback, and what is submitted with its CSRF token).
  var boxInput = document.getElementById("box-input");
  if (boxInput) {
    document.querySelectorAll(".shot svg.boxes").forEach(function (svg) {
      var start = null, drawn = null, dragged = false;
      svg.classList.add("drawable");
      function point(e) {
        var p = svg.createSVGPoint();
        p.x = e.clientX; p.y = e.clientY;
        p = p.matrixTransform(svg.getScreenCTM().inverse());
        var view = svg.viewBox.baseVal;
        return [Math.min(Math.max(p.x, 0), view.width), Math.min(Math.max(p.y, 0), view.height)];
      }
      svg.addEventListener("pointerdown", function (e) {
        if (e.button !== 0) return;
        e.preventDefault();
        svg.setPointerCapture(e.pointerId);
        start = point(e);
        dragged = false;
        if (!drawn) {
          drawn = document.createElementNS("http://www.w3.org/2000/svg", "rect");
          drawn.setAttribute("class", "drawn");
          drawn.setAttribute("vector-effect", "non-scaling-stroke");
          svg.appendChild(drawn);
        }
      });
      svg.addEventListener("pointermove", function (e) {
        if (!start) return;
        var end = point(e);
        var box = [Math.min(start[0], end[0]), Math.min(start[1], end[1]),
                   Math.max(start[0], end[0]), Math.max(start[1], end[1])].map(Math.round);
        drawn.setAttribute("x", box[0]);
        drawn.setAttribute("y", box[1]);
        drawn.setAttribute("width", box[2] - box[0]);
        drawn.setAttribute("height", box[3] - box[1]);
        boxInput.value = box.join(", ");
        dragged = true;
      });
      svg.addEventListener("pointerup", function () {
        if (start && dragged) document.getElementById("do-box").focus();
        start = null;
      });
      // A drag is not a click on the image's link.
      svg.addEventListener("click", function (e) { if (dragged) e.preventDefault(); });
    });
  }
})();
