// The Logs tab: a live tail of the app's merged log, filterable by process type.
'use strict';

const Logs = {
  async render(panel, app) {
    const type = h('select', { id: 'logs-type', 'aria-label': 'Process type' }, h('option', { value: '' }, 'All processes'));
    const follow = h('input', { type: 'checkbox', id: 'logs-follow', checked: true });
    const out = h('pre', { class: 'log tall', id: 'logs-out', 'aria-live': 'off', tabindex: 0 });
    const state = h('span', { class: 'muted', id: 'logs-state' });
    const err = h('p', { class: 'inline-error', role: 'alert', hidden: true });
    panel.append(h('section', { class: 'card' },
      h('div', { class: 'toolbar' }, type,
        h('label', { class: 'check' }, follow, ' Follow'),
        h('button', { type: 'button', onclick: () => { out.textContent = ''; } }, 'Clear'), state),
      err, out));

    let controller = null;
    const stop = () => { if (controller) controller.abort(); controller = null; };
    App.onLeave(stop);

    const start = async () => {
      stop();
      out.textContent = '';
      setInlineError(err, '');
      const c = new AbortController();
      controller = c;
      const q = new URLSearchParams();
      if (follow.checked) q.set('follow', '1');
      if (type.value) q.set('type', type.value);
      state.textContent = follow.checked ? 'live' : '';
      try {
        const res = await Api.raw('GET', Api.appPath(app, '/logs?' + q), { signal: c.signal });
        const done = await Api.stream(res, (line) => {
          const stick = out.scrollTop + out.clientHeight >= out.scrollHeight - 8;
          out.append(line + '\n');
          if (stick) out.scrollTop = out.scrollHeight;
        });
        if (done && !done.ok) setInlineError(err, done.error || 'The log tail failed (exit code ' + done.exit_code + ').');
        if (controller === c) state.textContent = 'ended';
      } catch (e) {
        if (e.name === 'AbortError') return;
        setInlineError(err, e.message);
        state.textContent = '';
      }
    };
    type.addEventListener('change', start);
    follow.addEventListener('change', start);

    // The filter offers the app's process types, read from its processes.
    try {
      const procs = instancesOf(await Api.get(Api.appPath(app, '/ps')));
      for (const t of [...new Set(procs.map((p) => p.ptype))].sort()) type.append(h('option', { value: t }, t));
    } catch (e) {
      setInlineError(err, e.message);
    }
    start();
  },
};
