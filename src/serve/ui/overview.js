// The Overview tab: processes (scale, restart), release history with phase durations, and a
// Deploy form whose progress streams into a log panel.
'use strict';

const Overview = {
  async render(panel, app) {
    const procCard = h('section', { class: 'card', 'aria-labelledby': 'h-procs' });
    const deployCard = h('section', { class: 'card', 'aria-labelledby': 'h-deploy' });
    const relCard = h('section', { class: 'card', 'aria-labelledby': 'h-releases' });
    panel.append(h('div', { class: 'grid-2' }, procCard, deployCard), relCard);
    Overview.deployForm(deployCard, app, () => {
      Overview.processes(procCard, app);
      Overview.releases(relCard, app);
    });
    await Promise.all([Overview.processes(procCard, app), Overview.releases(relCard, app)]);
  },

  async processes(card, app) {
    const err = h('p', { class: 'inline-error', role: 'alert', hidden: true });
    const head = h('div', { class: 'card-head' }, h('h2', { id: 'h-procs' }, 'Processes'),
      h('button', { type: 'button', id: 'restart-all', onclick: (e) => guarded(e.target, err, async () => {
        await Api.json('POST', Api.appPath(app, '/ps/restart'), {});
        await Overview.processes(card, app);
      }) }, 'Restart all'));
    card.replaceChildren(head, err, h('p', { class: 'muted' }, 'Loading…'));
    let procs;
    try {
      procs = await Api.get(Api.appPath(app, '/ps'));
    } catch (e) {
      card.replaceChildren(head, h('p', { class: 'inline-error', role: 'alert' }, e.message));
      return;
    }
    procs = instancesOf(procs);
    if (!procs.length) {
      card.replaceChildren(head, err, h('p', { class: 'muted' }, 'No processes: deploy a release first.'));
      return;
    }
    const counts = new Map();
    for (const p of procs) counts.set(p.ptype, (counts.get(p.ptype) || 0) + 1);
    const rows = procs.map((p) => h('tr', {},
      h('td', {}, h('code', { title: p.last_exit || '' }, p.name || p.ptype + '.' + p.index)),
      h('td', {}, h('span', { class: 'chip state-' + p.state }, p.state)),
      h('td', {}, p.pid ?? '—'), h('td', {}, p.port ?? '—'),
      h('td', {}, formatUptime(p.uptime_secs)),
      h('td', {}, p.restarts ?? 0)));
    const scaleRows = [...counts.entries()].map(([type, n]) => {
      const input = h('input', { type: 'number', min: 0, max: 32, value: n, 'aria-label': 'Instances of ' + type, class: 'num' });
      return h('form', { class: 'inline-form', onsubmit: (e) => {
        e.preventDefault();
        guarded(e.submitter, err, async () => {
          await Api.json('POST', Api.appPath(app, '/ps/scale'), { counts: { [type]: Number(input.value) } });
          await Overview.processes(card, app);
        });
      } }, h('label', {}, h('code', {}, type)), input,
      h('button', { type: 'submit' }, 'Scale'),
      h('button', { type: 'button', onclick: (e) => guarded(e.target, err, async () => {
        await Api.json('POST', Api.appPath(app, '/ps/restart'), { type });
        await Overview.processes(card, app);
      }) }, 'Restart'));
    });
    card.replaceChildren(head, err,
      h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, ['Process', 'State', 'PID', 'Port', 'Uptime', 'Restarts'].map((t) => h('th', {}, t)))),
        h('tbody', {}, rows))),
      h('div', { class: 'scale' }, scaleRows));
  },

  async releases(card, app) {
    const head = h('div', { class: 'card-head' }, h('h2', { id: 'h-releases' }, 'Releases'));
    card.replaceChildren(head, h('p', { class: 'muted' }, 'Loading…'));
    let rels;
    try {
      rels = await Api.get(Api.appPath(app, '/releases'));
    } catch (e) {
      card.replaceChildren(head, h('p', { class: 'inline-error', role: 'alert' }, e.message));
      return;
    }
    rels = Array.isArray(rels) ? rels : (rels.releases || []);
    if (!rels.length) {
      card.replaceChildren(head, h('p', { class: 'muted' }, 'No releases yet.'));
      return;
    }
    const rows = rels.map((r) => h('tr', {},
      h('td', {}, h('code', {}, r.id)),
      h('td', {}, h('code', { title: r.commit }, String(r.commit || '').slice(0, 8))),
      h('td', {}, formatTime(r.created_at)),
      h('td', {}, h('span', { class: 'chip state-' + r.status, title: r.error || '' }, r.status)),
      h('td', { class: 'phases' }, Overview.phases(r))));
    const last = rels[0];
    const parts = [head, h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Release', 'Commit', 'Created', 'Status', 'Phases'].map((t) => h('th', {}, t)))),
      h('tbody', {}, rows)))];
    if (last && last.error) {
      parts.push(h('h3', {}, 'Why ', h('code', {}, last.id), ' failed'),
        h('pre', { class: 'log', id: 'last-deploy-error' }, last.error));
    }
    card.replaceChildren(...parts);
  },

  /** Phase durations: build 1.2 s, predeploy 80 ms, … */
  phases(r) {
    const list = r.phases || [];
    if (!list.length) return '—';
    return h('span', { class: 'chips' }, list.map((p) => h('span', { class: 'phase' },
      p.name, ' ', h('b', {}, formatDuration(p.millis)))));
  },

  deployForm(card, app, onDone) {
    const repo = h('input', { id: 'deploy-repo', name: 'repo', required: true, placeholder: '/srv/src/myapp', autocomplete: 'off' });
    const rev = h('input', { id: 'deploy-rev', name: 'rev', placeholder: 'HEAD', autocomplete: 'off' });
    const log = h('pre', { class: 'log', id: 'deploy-log', 'aria-live': 'polite', hidden: true });
    const status = h('p', { id: 'deploy-status', class: 'status-line', role: 'status' });
    const err = h('p', { class: 'inline-error', role: 'alert', hidden: true });
    const button = h('button', { type: 'submit', class: 'primary', id: 'deploy-start' }, 'Deploy');
    let controller = null;
    App.onLeave(() => controller && controller.abort());
    const form = h('form', { id: 'deploy-form', onsubmit: async (e) => {
      e.preventDefault();
      log.hidden = false;
      log.textContent = '';
      status.textContent = 'Deploying…';
      status.className = 'status-line running';
      controller = new AbortController();
      const started = performance.now();
      const ok = await guarded(button, err, async () => {
        const body = { repo: repo.value.trim() };
        if (rev.value.trim()) body.rev = rev.value.trim();
        const res = await Api.raw('POST', Api.appPath(app, '/deploys'), {
          body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' }, signal: controller.signal });
        const done = await Api.stream(res, (line) => {
          log.append(line + '\n');
          log.scrollTop = log.scrollHeight;
        });
        if (!done) throw new Error('The server closed the stream before the deploy finished; see `slipway releases ' + app + '`.');
        if (!done.ok) throw new Error(done.error || 'The deploy failed (exit code ' + done.exit_code + '); its log is above.');
        return true;
      });
      const secs = ((performance.now() - started) / 1000).toFixed(1);
      status.textContent = ok ? 'Deployed in ' + secs + ' s' : 'Deploy failed after ' + secs + ' s';
      status.className = 'status-line ' + (ok ? 'done' : 'failed');
      // The server keeps releases, not deploy output: the tab keeps the last deploy's log so
      // that it is still there after visiting another tab or app.
      sessionStorage.setItem(lastDeployKey(app), JSON.stringify({
        log: log.textContent, status: status.textContent, ok: Boolean(ok), at: Date.now() }));
      onDone();
    } },
    h('div', { class: 'field' }, h('label', { for: 'deploy-repo' }, 'Repository path'), repo),
    h('div', { class: 'field' }, h('label', { for: 'deploy-rev' }, 'Revision'), rev),
    h('div', { class: 'actions' }, button));
    const last = JSON.parse(sessionStorage.getItem(lastDeployKey(app)) || 'null');
    if (last) {
      log.hidden = false;
      log.textContent = last.log;
      status.textContent = 'Last deploy from this tab, ' + new Date(last.at).toLocaleTimeString() + ': ' + last.status;
      status.className = 'status-line ' + (last.ok ? 'done' : 'failed');
    }
    card.replaceChildren(h('div', { class: 'card-head' }, h('h2', { id: 'h-deploy' }, 'Deploy')),
      form, err, status, log);
  },
};

function lastDeployKey(app) { return 'slipway.lastDeploy.' + app; }
