// Small DOM helpers: an element builder (text is always set as text, never as HTML, so a file
// or app name cannot inject markup), the modal dialog, and the page-wide error banner.
'use strict';

/** h('a', {href: '#'}, 'text', child) -> element. `on*` attributes take functions. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Shows an error on the page banner: nothing is swallowed. */
function showFatal(message) {
  document.getElementById('fatal-text').textContent = message;
  document.getElementById('fatal').hidden = false;
}

window.addEventListener('error', (e) => {
  showFatal((e.error && e.error.message) || e.message || 'unknown error');
});
window.addEventListener('unhandledrejection', (e) => {
  const r = e.reason;
  if (r && r.name === 'AbortError') return; // a stream we closed on purpose
  showFatal((r && r.message) || String(r));
});

/** Sets (or clears, with '') an inline error element's text. */
function setInlineError(el, message) {
  el.textContent = message || '';
  el.hidden = !message;
}

/**
 * Runs an async action for a button: disables it meanwhile and shows any failure in `errEl`
 * (inline) or else on the banner.
 */
async function guarded(button, errEl, action) {
  if (button) button.disabled = true;
  if (errEl) setInlineError(errEl, '');
  try {
    return await action();
  } catch (e) {
    if (errEl) setInlineError(errEl, e.message);
    else showFatal(e.message);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

/**
 * The modal dialog. `body` is a node (or nodes); `onOk` may throw to keep the dialog open with
 * the message shown inside it. Resolves with onOk's result, or null when cancelled.
 */
function openDialog({ title, body, okLabel, danger, onOk, canOk }) {
  const dlg = document.getElementById('dialog');
  const form = document.getElementById('dialog-form');
  const ok = document.getElementById('dialog-ok');
  const cancel = document.getElementById('dialog-cancel');
  const err = document.getElementById('dialog-error');
  document.getElementById('dialog-title').textContent = title;
  const holder = document.getElementById('dialog-body');
  holder.replaceChildren(...[].concat(body || []));
  ok.textContent = okLabel || 'OK';
  ok.className = danger ? 'danger' : 'primary';
  setInlineError(err, '');
  const refresh = () => { ok.disabled = canOk ? !canOk() : false; };
  holder.oninput = refresh;
  refresh();
  return new Promise((resolve) => {
    const finish = (value) => {
      form.onsubmit = null;
      cancel.onclick = null;
      dlg.oncancel = null;
      dlg.close();
      resolve(value);
    };
    form.onsubmit = async (e) => {
      e.preventDefault();
      if (canOk && !canOk()) return;
      ok.disabled = true;
      try {
        const value = onOk ? await onOk() : true;
        finish(value === undefined ? true : value);
      } catch (ex) {
        setInlineError(err, ex.message);
        ok.disabled = false;
      }
    };
    cancel.onclick = () => finish(null);
    dlg.oncancel = (e) => { e.preventDefault(); finish(null); };
    dlg.showModal();
    const first = holder.querySelector('input, select, textarea');
    (first || ok).focus();
    if (first && first.select) first.select();
  });
}

/** A usage bar: used out of capacity, red at or over the limit. */
function usageBar(used, capacity, label) {
  const pct = capacity > 0 ? Math.min(100, (used / capacity) * 100) : 0;
  const cls = pct >= 100 ? 'full' : pct >= 85 ? 'high' : '';
  // Set through the CSSOM: the server's Content-Security-Policy refuses inline style attributes.
  const fill = h('div', { class: 'usage-fill' });
  fill.style.width = pct.toFixed(2) + '%';
  return h('div', { class: 'usage ' + cls },
    h('div', { class: 'usage-track', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100,
      'aria-valuenow': pct.toFixed(1), 'aria-label': label || 'Mount usage' }, fill),
    h('div', { class: 'usage-text' },
      h('span', { class: 'usage-used' }, formatBytes(used)), ' of ', formatBytes(capacity),
      ' (' + pct.toFixed(1) + '%)'));
}
