// Pages drawn on the server that change while you watch them (the overview's health figures,
// a rollout in flight): every few seconds, fetch the page again and swap the parts named in
// data-parts. A rollout page reloads once its rollout has ended (its steps say data-live="no").
(function () {
  "use strict";
  const script = document.currentScript;
  if (!script) return;
  const every = Number(script.dataset.refresh || 5000);
  const parts = (script.dataset.parts || "").split(" ").filter(Boolean);
  async function refresh() {
    try {
      const res = await fetch(location.href, { credentials: "same-origin", cache: "no-store" });
      if (res.redirected || !res.ok) return;
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      for (const id of parts) {
        const fresh = doc.getElementById(id), old = document.getElementById(id);
        if (fresh && old) old.replaceWith(fresh);
      }
      const steps = doc.getElementById("rollout-steps");
      if (steps && steps.dataset.live === "no" && parts.includes("rollout-steps")) location.reload();
    } catch (e) { /* the server may be restarting: try again on the next tick */ }
  }
  setInterval(refresh, every);
})();
