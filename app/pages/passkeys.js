"use strict";
// Passkeys on the hosted pages, with the browser's own JSON helpers (WebAuthn Level 3:
// PublicKeyCredential.parseCreationOptionsFromJSON / parseRequestOptionsFromJSON and
// credential.toJSON()); no library. Each ceremony fetches its options (a challenge that
// works once), asks the authenticator, puts the credential's JSON into its form's hidden
// `credential` field and submits the form, which carries the page's anti-CSRF token: the
// server answers as for any other form (a redirect, or the page with its error).
(function () {
  const supported = Boolean(
    window.PublicKeyCredential &&
      PublicKeyCredential.parseRequestOptionsFromJSON &&
      PublicKeyCredential.parseCreationOptionsFromJSON
  );

  function errorBox(form) {
    return form.querySelector("[data-passkey-error]");
  }

  function showError(form, text) {
    const box = errorBox(form);
    if (box) {
      box.textContent = text;
      box.hidden = !text;
    }
  }

  async function fetchJSON(path, init) {
    let response;
    try {
      response = await fetch(path, Object.assign({ cache: "no-store", credentials: "same-origin" }, init));
    } catch (error) {
      return { ok: false, body: { detail: "The service could not be reached; try again." } };
    }
    let body = null;
    try { body = await response.json(); } catch (error) { body = null; }
    return { ok: response.ok, body: body };
  }

  function postJSON(path, payload) {
    return fetchJSON(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(payload),
    });
  }

  function postForm(path, form) {
    const fields = new URLSearchParams();
    fields.set("csrf_token", form.elements.csrf_token.value);
    return fetchJSON(path, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json" },
      body: fields.toString(),
    });
  }

  function submitWith(form, credential) {
    form.elements.credential.value = JSON.stringify(credential.toJSON());
    form.submit();
  }

  function refusal(error) {
    // The person closed the dialog, or no passkey matched: nothing to sign in with.
    if (error && error.name === "NotAllowedError") {
      return "No passkey was used. Try again, or sign in with your password.";
    }
    if (error && error.name === "InvalidStateError") {
      return "This device already holds a passkey for your account.";
    }
    return "The passkey could not be used on this device.";
  }

  async function requestOptions(form) {
    const mfaToken = form.dataset.mfaToken;
    const answer = mfaToken
      ? await postJSON("/auth/login/mfa/passkey-options", { mfa_token: mfaToken })
      : await postJSON("/auth/passkey/options", {});
    if (!answer.ok) {
      showError(form, (answer.body && answer.body.detail) || "Passkeys are unavailable.");
      return null;
    }
    return PublicKeyCredential.parseRequestOptionsFromJSON(answer.body);
  }

  // Sign-in (and the second step): a button, and on /login the browser's autofill.
  let autofill = null;

  async function signIn(form) {
    if (autofill) { autofill.abort(); autofill = null; }
    showError(form, "");
    const publicKey = await requestOptions(form);
    if (!publicKey) { return; }
    try {
      const credential = await navigator.credentials.get({ publicKey: publicKey });
      if (credential) { submitWith(form, credential); }
    } catch (error) {
      showError(form, refusal(error));
    }
  }

  async function offerAutofill(form) {
    if (!PublicKeyCredential.isConditionalMediationAvailable) { return; }
    if (!(await PublicKeyCredential.isConditionalMediationAvailable())) { return; }
    const publicKey = await requestOptions(form);
    if (!publicKey) { return; }
    autofill = new AbortController();
    try {
      const credential = await navigator.credentials.get({
        publicKey: publicKey, mediation: "conditional", signal: autofill.signal,
      });
      if (credential) { submitWith(form, credential); }
    } catch (error) {
      // Aborted for the button, or dismissed: the password form stays as it was.
    }
  }

  // The account page: "Add a passkey".
  async function addPasskey(form) {
    showError(form, "");
    const answer = await postForm("/account/passkeys/options", form);
    if (!answer.ok) {
      showError(form, (answer.body && answer.body.detail) || "Passkeys are unavailable.");
      return;
    }
    try {
      const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(answer.body);
      const credential = await navigator.credentials.create({ publicKey: publicKey });
      if (credential) { submitWith(form, credential); }
    } catch (error) {
      showError(form, refusal(error));
    }
  }

  document.querySelectorAll("form[data-passkey]").forEach(function (form) {
    if (!supported) {
      showError(form, "This browser cannot use passkeys.");
      form.querySelectorAll("button").forEach(function (button) { button.disabled = true; });
      return;
    }
    const kind = form.dataset.passkey;
    form.addEventListener("submit", function (event) {
      if (form.elements.credential.value) { return; }
      event.preventDefault();
      if (kind === "create") { addPasskey(form); } else { signIn(form); }
    });
    if (kind === "signin" && form.dataset.autofill === "on") { offerAutofill(form); }
  });
})();
