"use strict";
(function () {
  const page = window.authsvcPage;
  const form = document.getElementById("verify-form");
  const button = document.getElementById("submit");
  const error = document.getElementById("error");
  const status = document.getElementById("status");
  const token = page.token();

  if (!token) {
    form.hidden = true;
    page.show(error, "This link has no token. Ask for a new verification link.");
    return;
  }

  // Nothing happens on load: mail scanners open links, only a person presses the button.
  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    page.show(error, "");
    button.disabled = true;
    status.textContent = "Confirming…";
    const answer = await page.post("auth/verify-email", { token: token });
    button.disabled = false;
    status.textContent = "";
    if (answer.ok && answer.body) {
      form.hidden = true;
      status.textContent = "Thank you: " + answer.body.email + " is confirmed.";
      return;
    }
    page.show(error, page.messageOf(answer.body, "Something went wrong; try again."));
    if (answer.body && answer.body.error_code === "INVALID_VERIFICATION_TOKEN") {
      form.hidden = true;
    }
  });
})();
