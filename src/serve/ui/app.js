// Sign-in, the hash router, the apps list and the app page with its tabs.
'use strict';

const App = {
  /** Run when the current view is left: closes its streams. */
  cleanups: [],
  onLeave(fn) { App.cleanups.push(fn); },
  leave() {
    for (const fn of App.cleanups.splice(0)) {
      try { fn(); } catch (e) { showFatal(e.message); }
    }
  },
};

function showSignIn(message) {
  App.leave();
  document.getElementById('view').hidden = true;
  document.getElementById('topnav').hidden = true;
  document.getElementById('signin').hidden = false;
  setInlineError(document.getElementById('signin-error'), message || '');
  document.getElementById('token').focus();
}

Api.onUnauthorized = (err) => {
  Api.clearToken();
  showSignIn(err.message);
};

document.getElementById('signin-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = document.getElementById('token');
  const errEl = document.getElementById('signin-error');
  const button = e.target.querySelector('button[type=submit]');
  const token = input.value.trim();
  if (!token) return;
  Api.setToken(token);
  // The server says who the token is: an app token reaches one app, so it lands on that app.
  const who = await guarded(button, errEl, async () => {
    const res = await fetch('/api/session', { method: 'POST', headers: Api.headers(), credentials: 'omit' });
    if (!res.ok) {
      Api.clearToken();
      const err = await Api.failure(res);
      throw err;
    }
    return res.json();
  });
  if (who) {
    input.value = '';
    const home = who.app ? appLink(who.app) : '#/apps';
    if (!location.hash || location.hash === '#/' || location.hash === '#') location.hash = home;
    route();
  }
});

document.getElementById('signout').addEventListener('click', () => {
  Api.clearToken();
  showSignIn('');
});
document.getElementById('fatal-close').addEventListener('click', () => {
  document.getElementById('fatal').hidden = true;
});

/** The view container, emptied and shown. */
function view() {
  const v = document.getElementById('view');
  document.getElementById('signin').hidden = true;
  document.getElementById('topnav').hidden = false;
  v.hidden = false;
  v.replaceChildren();
  return v;
}

function appLink(name, tab) {
  return '#/apps/' + encodeURIComponent(name) + '/' + (tab || 'overview');
}

/** The apps list: runtime, release and commit, process states, URL, mount usage. */
async function renderApps() {
  const v = view();
  v.append(h('div', { class: 'page-head' }, h('h1', {}, 'Apps')));
  const holder = h('div', { class: 'card' }, h('p', { class: 'muted' }, 'Loading…'));
  v.append(holder);
  let apps;
  try {
    apps = await Api.get('/api/apps');
  } catch (e) {
    holder.replaceChildren(h('p', { class: 'inline-error', role: 'alert' }, e.message));
    return;
  }
  apps = Array.isArray(apps) ? apps : (apps.apps || []);
  if (!apps.length) {
    holder.replaceChildren(h('p', { class: 'muted' }, 'No apps yet. Create one with ',
      h('code', {}, 'slipway apps create NAME'), '.'));
    return;
  }
  const rows = apps.map((a) => {
    const m = a.mount || {};
    return h('tr', { dataset: { app: a.name } },
      h('td', {}, h('a', { href: appLink(a.name), class: 'app-name' }, a.name)),
      h('td', {}, h('span', { class: 'tag' }, a.runtime || '—')),
      h('td', {}, releaseCell(a)),
      h('td', {}, a.processes && a.processes.error
        ? h('span', { class: 'inline-error' }, a.processes.error) : processChips(instancesOf(a.processes))),
      h('td', {}, a.url ? h('a', { href: a.url, target: '_blank', rel: 'noopener' }, a.url) : '—'),
      h('td', { class: 'mount-cell' }, m.enabled
        ? usageBar(m.used_bytes, m.capacity_bytes || m.limit_bytes, 'Mount usage of ' + a.name)
        : h('span', { class: 'muted' }, 'disabled')));
  });
  holder.replaceChildren(h('div', { class: 'table-wrap' }, h('table', { class: 'apps' },
    h('thead', {}, h('tr', {}, ['App', 'Runtime', 'Release', 'Processes', 'URL', 'Mount']
      .map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows))));
}

function releaseCell(a) {
  if (!a.current) return h('span', { class: 'muted' }, 'never deployed');
  return h('span', {}, h('code', {}, a.current),
    a.commit ? h('span', { class: 'muted' }, ' @ ', h('code', { title: a.commit }, a.commit.slice(0, 8))) : null,
    a.stopped ? h('span', { class: 'tag' }, 'stopped') : null);
}

/** The instances of a processes report (`GET /api/apps/{app}/ps`). */
function instancesOf(report) {
  if (!report) return [];
  if (report.error) throw new Error(report.error);
  return report.instances || [];
}

/** One chip per process instance, coloured by state. */
function processChips(procs) {
  if (!procs.length) return h('span', { class: 'muted' }, 'none');
  return h('span', { class: 'chips' }, procs.map((p) => {
    const name = p.name || p.ptype + '.' + p.index;
    return h('span', { class: 'chip state-' + (p.state || 'unknown'), title: name + ': ' + p.state },
      name, ' ', h('b', {}, p.state || '?'));
  }));
}

const TABS = [
  ['overview', 'Overview'],
  ['logs', 'Logs'],
  ['mount', 'Persistent Filesystem'],
  ['files', 'Files'],
];

/** The app page: a header, the tab bar, then the tab's own content. */
function renderAppPage(app, tab, rest) {
  const v = view();
  v.append(h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
    h('a', { href: '#/apps' }, 'Apps'), ' / ', h('span', {}, app)));
  v.append(h('div', { class: 'page-head' }, h('h1', {}, app)));
  const bar = h('div', { class: 'tabs', role: 'tablist' }, TABS.map(([id, label]) =>
    h('a', { href: appLink(app, id), role: 'tab', id: 'tab-' + id, 'aria-selected': String(id === tab),
      class: id === tab ? 'active' : '' }, label)));
  v.append(bar);
  const panel = h('div', { class: 'tabpanel', role: 'tabpanel', 'aria-labelledby': 'tab-' + tab });
  v.append(panel);
  const renderers = { overview: Overview.render, logs: Logs.render, mount: MountTab.render, files: Files.render };
  const render = renderers[tab];
  if (!render) {
    panel.append(h('p', { class: 'inline-error' }, 'No such tab: ' + tab));
    return;
  }
  Promise.resolve(render(panel, app, rest)).catch((e) => {
    panel.append(h('p', { class: 'inline-error', role: 'alert' }, e.message));
  });
}

function route() {
  App.leave();
  if (!Api.token()) { showSignIn(''); return; }
  const parts = location.hash.replace(/^#\/?/, '').split('/');
  if (parts[0] !== 'apps' || !parts[1]) { renderApps(); return; }
  const app = decodeURIComponent(parts[1]);
  const tab = parts[2] || 'overview';
  const rest = parts.slice(3).map(decodeURIComponent).join('/');
  renderAppPage(app, tab, rest);
}

window.addEventListener('hashchange', route);
route();
