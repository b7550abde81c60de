"use strict";
(function () {
  const page = window.authsvcPage;
  const form = document.getElementById("reset-form");
  const password = document.getElementById("new-password");
  const confirmation = document.getElementById("confirm-password");
  const button = document.getElementById("submit");
  const error = document.getElementById("error");
  const status = document.getElementById("status");
  const token = page.token();

  if (!token) {
    form.hidden = true;
    page.show(error, "This link has no token. Ask for a new reset link.");
    return;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    page.show(error, "");
    password.removeAttribute("aria-invalid");
    confirmation.removeAttribute("aria-invalid");
    if (!password.value) {
      password.setAttribute("aria-invalid", "true");
      page.show(error, "Type a new password.");
      password.focus();
      return;
    }
    if (password.value !== confirmation.value) {
      confirmation.setAttribute("aria-invalid", "true");
      page.show(error, "The two passwords do not match.");
      confirmation.focus();
      return;
    }
    button.disabled = true;
    status.textContent = "Saving the new password…";
    const answer = await page.post("auth/password/reset", {
      token: token,
      new_password: password.value,
    });
    button.disabled = false;
    status.textContent = "";
    if (answer.status === 204) {
      form.hidden = true;
      status.textContent =
        "Your password was changed and every device was signed out. Sign in with the new password.";
      return;
    }
    page.show(error, page.messageOf(answer.body, "Something went wrong; try again."));
    if (answer.body && answer.body.error_code === "INVALID_RESET_TOKEN") {
      form.hidden = true;  // a dead link stays dead: ask for a new one
    } else {
      password.setAttribute("aria-invalid", "true");
      password.focus();
    }
  });
})();
