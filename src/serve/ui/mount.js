// The Persistent Filesystem tab, following the App Manager's steps: status and usage, then
// "Edit Persistent Filesystem": Enabled / Disabled, a size, Save. Disabling deletes every file,
// so it shows what will go, offers an export first and wants the app's name typed.
'use strict';

const MountTab = {
  async render(panel, app) {
    const card = h('section', { class: 'card', id: 'mount-card' }, h('p', { class: 'muted' }, 'Loading…'));
    panel.append(card);
    await MountTab.show(card, app);
  },

  async show(card, app) {
    let st;
    try {
      st = await Api.get(Api.appPath(app, '/mount'));
    } catch (e) {
      card.replaceChildren(h('p', { class: 'inline-error', role: 'alert' }, e.message));
      return;
    }
    const edit = h('button', { type: 'button', id: 'mount-edit', class: 'primary',
      onclick: () => MountTab.editForm(card, app, st) }, 'Edit Persistent Filesystem');
    const rows = [
      ['Status', h('span', { id: 'mount-status', class: 'tag ' + (st.enabled ? 'ok' : '') }, st.enabled ? 'Enabled' : 'Disabled')],
    ];
    if (st.enabled) {
      rows.push(
        ['Usage', h('div', { id: 'mount-usage' }, usageBar(st.used_bytes, st.capacity_bytes || st.limit_bytes))],
        ['Limit', h('span', {}, formatBytes(st.limit_bytes), ' · ',
          h('span', { id: 'mount-mode', title: st.mode === 'hard'
            ? 'A filesystem of its own: writes past the limit fail (ENOSPC).'
            : 'A plain directory: slipway checks the limit on uploads and reports usage.' },
          (st.mode || '?') + ' limit'))],
        ['Contents', (st.files ?? 0) + ' files, ' + (st.dirs ?? 0) + ' folders'],
        ['In the app', h('span', {}, h('code', {}, '../mount'), ' and ', h('code', {}, '~/mount'))]);
      if (st.over_limit) rows.push(['', h('span', { class: 'inline-error' }, 'At or over the limit: uploads will be refused.')]);
    }
    card.replaceChildren(
      h('div', { class: 'card-head' }, h('h2', {}, 'Persistent Filesystem'), edit),
      h('dl', { class: 'facts' }, rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
      st.enabled ? h('p', {}, h('a', { href: '#/apps/' + encodeURIComponent(app) + '/files', id: 'mount-browse' }, 'Browse files →')) : null);
  },

  editForm(card, app, st) {
    const err = h('p', { class: 'inline-error', role: 'alert', hidden: true, id: 'mount-error' });
    const radio = (value, label) => h('label', { class: 'radio' },
      h('input', { type: 'radio', name: 'mount-enabled', value, id: 'mount-' + value,
        checked: (value === 'enabled') === Boolean(st.enabled) }), ' ', label);
    const size = h('input', { id: 'mount-size', name: 'size', autocomplete: 'off',
      value: st.enabled ? formatSizeArg(st.limit_bytes) : '25G', placeholder: '25G', 'aria-describedby': 'mount-size-help' });
    const sizeField = h('div', { class: 'field' }, h('label', { for: 'mount-size' }, 'Size'), size,
      h('small', { id: 'mount-size-help', class: 'muted' }, 'For example 512M, 10G. A smaller size than the files need is refused.'));
    const confirm = h('input', { id: 'mount-confirm', autocomplete: 'off', spellcheck: 'false' });
    const danger = h('div', { class: 'danger-zone', id: 'mount-danger', hidden: true },
      h('p', {}, h('strong', {}, 'Disabling deletes every file in the persistent filesystem. This cannot be undone.')),
      h('p', { id: 'mount-will-delete' }, 'It holds ', h('b', {}, String(st.files ?? 0) + ' files'),
        ' (', h('b', {}, formatBytes(st.apparent_bytes ?? st.used_bytes)), ').'),
      h('p', {}, h('button', { type: 'button', id: 'mount-export', onclick: (e) => guarded(e.target, err,
        () => Api.download(Api.appPath(app, '/mount/export'), app + '-mount.tar.gz')) }, 'Export first (tar.gz)')),
      h('div', { class: 'field' }, h('label', { for: 'mount-confirm' }, 'Type ', h('code', {}, app), ' to confirm'), confirm));
    const save = h('button', { type: 'submit', class: 'primary', id: 'mount-save' }, 'Save');
    const cancel = h('button', { type: 'button', onclick: () => MountTab.show(card, app) }, 'Cancel');
    const form = h('form', { id: 'mount-form' },
      h('fieldset', {}, h('legend', {}, 'Persistent filesystem'), radio('enabled', 'Enabled'), radio('disabled', 'Disabled')),
      sizeField, danger, err, h('div', { class: 'actions' }, cancel, save));
    const enabled = () => form.querySelector('input[name=mount-enabled]:checked').value === 'enabled';
    const refresh = () => {
      const disabling = !enabled() && st.enabled;
      sizeField.hidden = !enabled();
      danger.hidden = !disabling;
      save.className = disabling ? 'danger' : 'primary';
      save.disabled = disabling && confirm.value !== app;
    };
    form.addEventListener('input', refresh);
    form.addEventListener('change', refresh);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      guarded(save, err, async () => {
        const body = enabled() ? { enabled: true, size: size.value.trim() } : { enabled: false, confirm: confirm.value };
        await Api.json('PUT', Api.appPath(app, '/mount'), body);
        await MountTab.show(card, app);
      }).then(refresh);
    });
    card.replaceChildren(h('div', { class: 'card-head' }, h('h2', {}, 'Edit Persistent Filesystem')), form);
    refresh();
    form.querySelector('input[name=mount-enabled]:checked').focus();
  },
};

/** 268435456 -> "256M": the limit as the size field takes it. */
function formatSizeArg(bytes) {
  const units = [['T', 2 ** 40], ['G', 2 ** 30], ['M', 2 ** 20], ['K', 2 ** 10]];
  for (const [u, n] of units) if (bytes >= n && bytes % n === 0) return bytes / n + u;
  return String(bytes);
}
