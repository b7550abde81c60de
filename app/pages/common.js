"use strict";
// Shared by the account pages: read the link's token, call the API, show its answer.
// Loaded as a file from this origin: the pages' CSP allows no inline script.
window.authsvcPage = (function () {
  function token() {
    return new URLSearchParams(window.location.search).get("token") || "";
  }

  function messageOf(body, fallback) {
    if (body && Array.isArray(body.errors) && body.errors.length) {
      return body.errors.map(function (e) { return e.message; }).join(" ");
    }
    return (body && body.detail) || fallback;
  }

  async function post(path, payload) {
    let response;
    try {
      response = await fetch(path, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept": "application/json" },
        body: JSON.stringify(payload),
        credentials: "omit",
        cache: "no-store",
      });
    } catch (error) {
      return { ok: false, status: 0, body: { detail: "The service could not be reached; try again." } };
    }
    let body = null;
    if (response.status !== 204) {
      try { body = await response.json(); } catch (error) { body = null; }
    }
    return { ok: response.ok, status: response.status, body: body };
  }

  function show(element, text) {
    element.textContent = text;
    element.hidden = !text;
  }

  return { token: token, messageOf: messageOf, post: post, show: show };
})();
