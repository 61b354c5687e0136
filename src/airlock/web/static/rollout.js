// A rollout in flight: every few seconds, fetch this page again and swap its live parts
// (steps with bake progress, verdict, charts, decisions). The server draws everything.
(function () {
  "use strict";
  const script = document.currentScript;
  const every = Number((script && script.dataset.refresh) || 5000);
  const PARTS = ["rollout-steps", "verdict", "rollout-charts", "decisions"];
  async function refresh() {
    try {
      const res = await fetch(location.href, { credentials: "same-origin", cache: "no-store" });
      if (res.redirected || !res.ok) return;
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      for (const id of PARTS) {
        const fresh = doc.getElementById(id), old = document.getElementById(id);
        if (fresh && old) old.replaceWith(fresh);
      }
      const steps = doc.getElementById("rollout-steps");
      if (steps && steps.dataset.live !== "yes") location.reload();
    } catch (e) { /* the server may be restarting: try again on the next tick */ }
  }
  setInterval(refresh, every);
})();
