// Placeholder sign-in: checks the token with POST /api/session and lists the apps.
"use strict";
const $ = (id) => document.getElementById(id);
function showError(msg) { $("error").textContent = msg; $("error").hidden = false; }
window.addEventListener("error", (e) => showError(String(e.message)));
async function api(path, opts = {}) {
  const token = sessionStorage.getItem("slipway-token") || "";
  const res = await fetch(path, { ...opts, headers: { ...(opts.headers || {}), Authorization: "Bearer " + token } });
  if (!res.ok) { const body = await res.json().catch(() => ({})); throw new Error(body.error || res.statusText); }
  return res.json();
}
$("signin").addEventListener("submit", async (e) => {
  e.preventDefault();
  sessionStorage.setItem("slipway-token", $("token").value);
  try {
    await api("/api/session", { method: "POST" });
    const apps = await api("/api/apps");
    $("apps").replaceChildren(...apps.map((a) => { const li = document.createElement("li"); li.textContent = a.name + " " + (a.current || "-"); return li; }));
  } catch (err) { showError(err.message); }
});
