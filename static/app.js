// Small conveniences; every page works without them.
document.addEventListener("click", (event) => {
  const print = event.target.closest("[data-print]");
  if (print) {
    window.print();
  }
});
// A payment button clicked twice sends one request; the idempotency key
// would make the second harmless anyway.
document.addEventListener("submit", (event) => {
  const button = event.target.querySelector("[data-once]");
  if (button) {
    setTimeout(() => { button.disabled = true; }, 0);
  }
});
