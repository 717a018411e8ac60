// The file explorer over an app's mount: breadcrumbs, a listing with size and modified time,
// uploads (drag files or folders from the desktop, or File > Upload Files…) with a progress bar
// and a cancel per file, download, rename, delete, new folder, export and import. Every error is
// shown inline and the explorer stays usable.
//
// Edits are conditional: delete, rename and overwriting uploads send the ETag the listing
// showed (If-Match), new uploads send If-None-Match: *, so a file someone else changed
// meanwhile is never overwritten or deleted; the server answers 412 and the explorer offers a
// reload.
'use strict';

/** Whether a failure is the server's 412: the entry changed since it was listed. */
function isChanged(e) {
  return e && (e.status === 412 || e.code === 'changed');
}

const Files = {
  async render(panel, app, dir) {
    const ex = new Explorer(app, panel);
    App.onLeave(() => ex.close());
    await ex.open(dir || '');
  },
};

class Explorer {
  constructor(app, panel) {
    this.app = app;
    this.dir = '';
    this.entries = new Map();
    this.uploads = [];
    this.active = 0;
    this.build(panel);
  }

  build(panel) {
    const menuItems = [
      ['upload-files', 'Upload Files…', () => this.filePicker.click()],
      ['upload-folder', 'Upload Folder…', () => this.folderPicker.click()],
      ['new-folder', 'New Folder…', () => this.newFolder()],
      null,
      ['export', 'Export as tar.gz', () => this.exportTar()],
      ['import', 'Import Archive…', () => this.importPicker.click()],
    ];
    this.menu = h('div', { class: 'menu', role: 'menu', id: 'file-menu', hidden: true },
      menuItems.map((m) => m ? h('button', { type: 'button', role: 'menuitem', id: 'menu-' + m[0],
        onclick: () => { this.closeMenu(); m[2](); } }, m[1]) : h('hr', {})));
    this.menuButton = h('button', { type: 'button', id: 'file-menu-button', 'aria-haspopup': 'menu',
      'aria-expanded': 'false', 'aria-controls': 'file-menu', onclick: () => this.toggleMenu() }, 'File ▾');
    this.menuButton.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowDown') { e.preventDefault(); this.toggleMenu(true); }
    });
    this.menu.addEventListener('keydown', (e) => this.menuKeys(e));
    this.onDocClick = (e) => { if (!this.menuWrap.contains(e.target)) this.closeMenu(); };
    document.addEventListener('click', this.onDocClick);
    this.menuWrap = h('div', { class: 'menu-wrap' }, this.menuButton, this.menu);

    this.filePicker = h('input', { type: 'file', multiple: true, hidden: true, id: 'upload-input' });
    this.filePicker.addEventListener('change', () => {
      this.enqueue([...this.filePicker.files].map((f) => ({ file: f, rel: f.name })));
      this.filePicker.value = '';
    });
    this.folderPicker = h('input', { type: 'file', multiple: true, webkitdirectory: true, hidden: true, id: 'upload-folder-input' });
    this.folderPicker.addEventListener('change', () => {
      this.enqueue([...this.folderPicker.files].map((f) => ({ file: f, rel: f.webkitRelativePath || f.name })));
      this.folderPicker.value = '';
    });
    this.importPicker = h('input', { type: 'file', accept: '.tar,.tar.gz,.tgz,application/gzip,application/x-tar', hidden: true, id: 'import-input' });
    this.importPicker.addEventListener('change', () => {
      const f = this.importPicker.files[0];
      this.importPicker.value = '';
      if (f) this.importArchive(f);
    });

    this.usage = h('div', { class: 'explorer-usage', id: 'files-usage' });
    this.crumbs = h('nav', { class: 'crumbs path', 'aria-label': 'Folder', id: 'files-crumbs' });
    this.error = h('div', { class: 'inline-error', role: 'alert', id: 'files-error', hidden: true });
    this.notice = h('div', { class: 'notice', role: 'status', id: 'files-notice', hidden: true });
    this.body = h('tbody', { id: 'files-body' });
    this.table = h('table', { class: 'files' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col', class: 'num' }, 'Size'),
        h('th', { scope: 'col' }, 'Modified'), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
      this.body);
    this.uploadList = h('ul', { class: 'uploads', id: 'uploads', 'aria-label': 'Uploads' });
    this.drop = h('section', { class: 'card explorer', id: 'dropzone' },
      h('div', { class: 'toolbar' }, this.menuWrap,
        h('button', { type: 'button', id: 'files-refresh', onclick: () => this.refresh() }, 'Refresh'),
        this.crumbs, this.usage),
      this.error, this.notice, this.uploadList,
      h('div', { class: 'table-wrap' }, this.table),
      h('p', { class: 'drop-hint muted' }, 'Drop files or folders here to upload them into this folder.'),
      h('div', { class: 'drop-overlay', 'aria-hidden': 'true' }, 'Drop to upload'),
      this.filePicker, this.folderPicker, this.importPicker);
    let depth = 0;
    this.drop.addEventListener('dragenter', (e) => { if (hasFiles(e)) { depth += 1; this.drop.classList.add('dragging'); e.preventDefault(); } });
    this.drop.addEventListener('dragover', (e) => { if (hasFiles(e)) { e.preventDefault(); e.dataTransfer.dropEffect = 'copy'; } });
    this.drop.addEventListener('dragleave', () => { depth = Math.max(0, depth - 1); if (!depth) this.drop.classList.remove('dragging'); });
    this.drop.addEventListener('drop', (e) => {
      e.preventDefault();
      depth = 0;
      this.drop.classList.remove('dragging');
      this.dropped(e.dataTransfer).catch((ex) => this.showError(ex.message));
    });
    panel.append(this.drop);
  }

  close() {
    document.removeEventListener('click', this.onDocClick);
    for (const u of this.uploads) if (u.state === 'queued' || u.state === 'uploading') u.cancel();
  }

  toggleMenu(force) {
    const open = force ?? this.menu.hidden;
    this.menu.hidden = !open;
    this.menuButton.setAttribute('aria-expanded', String(open));
    if (open) this.menu.querySelector('button').focus();
  }

  closeMenu() {
    if (this.menu.hidden) return;
    this.menu.hidden = true;
    this.menuButton.setAttribute('aria-expanded', 'false');
  }

  menuKeys(e) {
    const items = [...this.menu.querySelectorAll('button')];
    const i = items.indexOf(document.activeElement);
    if (e.key === 'Escape') { this.closeMenu(); this.menuButton.focus(); e.preventDefault(); }
    else if (e.key === 'ArrowDown') { items[(i + 1) % items.length].focus(); e.preventDefault(); }
    else if (e.key === 'ArrowUp') { items[(i - 1 + items.length) % items.length].focus(); e.preventDefault(); }
  }

  showError(message) { setInlineError(this.error, message); }

  /** A 412: `path` changed since it was listed. Says so inline, with a Reload button. */
  showChanged(path) {
    const reload = h('button', { type: 'button', class: 'small', id: 'files-reload',
      onclick: () => { this.showError(''); this.refresh(); } }, 'Reload');
    this.error.replaceChildren(h('span', {}, '“' + path + '” changed meanwhile (someone else edited, renamed or deleted it) — reload and try again. Nothing was changed. '), reload);
    this.error.hidden = false;
  }

  /** If-Match with the ETag the listing showed for `e`, when it had one. */
  ifMatch(e) {
    return e && e.etag ? { 'If-Match': e.etag } : {};
  }

  showNotice(message) {
    this.notice.textContent = message;
    this.notice.hidden = !message;
  }

  join(name) { return this.dir ? this.dir + '/' + name : name; }

  async open(dir) {
    this.dir = dir.replace(/^\/+|\/+$/g, '');
    const want = '#/apps/' + encodeURIComponent(this.app) + '/files' +
      (this.dir ? '/' + this.dir.split('/').map(encodeURIComponent).join('/') : '');
    if (location.hash !== want) history.replaceState(null, '', want);
    this.showError('');
    this.renderCrumbs();
    await this.refresh();
  }

  renderCrumbs() {
    const parts = this.dir ? this.dir.split('/') : [];
    const link = (label, path, current) => current
      ? h('span', { 'aria-current': 'page' }, label)
      : h('a', { href: '#', onclick: (e) => { e.preventDefault(); this.open(path); } }, label);
    const items = [link('mount', '', parts.length === 0)];
    parts.forEach((p, i) => items.push(h('span', { class: 'sep' }, '/'), link(p, parts.slice(0, i + 1).join('/'), i === parts.length - 1)));
    this.crumbs.replaceChildren(...items);
  }

  async refresh() {
    await Promise.all([this.list(), this.refreshUsage()]);
  }

  async refreshUsage() {
    try {
      const st = await Api.get(Api.appPath(this.app, '/mount'));
      this.usage.replaceChildren(st.enabled
        ? usageBar(st.used_bytes, st.capacity_bytes || st.limit_bytes)
        : h('span', { class: 'muted' }, 'disabled'));
    } catch (e) {
      this.showError(e.message);
    }
  }

  async list() {
    let entries;
    try {
      const res = await Api.raw('GET', Api.filePath(this.app, this.dir), { headers: { Accept: 'application/json' } });
      const body = await res.json();
      entries = Array.isArray(body) ? body : (body.entries || []);
    } catch (e) {
      this.body.replaceChildren(h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'Could not list this folder.')));
      this.showError(e.message);
      return;
    }
    this.entries = new Map(entries.map((e) => [e.name, e]));
    entries.sort((a, b) => (a.kind === 'dir' ? 0 : 1) - (b.kind === 'dir' ? 0 : 1) || a.name.localeCompare(b.name));
    const rows = [];
    if (this.dir) {
      const up = this.dir.split('/').slice(0, -1).join('/');
      rows.push(h('tr', { class: 'up' }, h('td', { colspan: 4 },
        h('a', { href: '#', onclick: (e) => { e.preventDefault(); this.open(up); } }, '↑ Parent folder'))));
    }
    for (const e of entries) rows.push(this.row(e));
    if (!entries.length) rows.push(h('tr', {}, h('td', { colspan: 4, class: 'empty muted' }, 'This folder is empty.')));
    this.body.replaceChildren(...rows);
  }

  row(e) {
    const path = this.join(e.name);
    const isDir = e.kind === 'dir';
    const name = isDir
      ? h('a', { href: '#', class: 'entry dir', onclick: (ev) => { ev.preventDefault(); this.open(path); } }, e.name)
      : h('span', { class: 'entry ' + (e.kind || 'file') }, e.name);
    const act = (label, fn, cls) => h('button', { type: 'button', class: 'small ' + (cls || ''),
      'aria-label': label + ' ' + e.name, onclick: (ev) => fn(ev.target) }, label);
    return h('tr', { dataset: { name: e.name, kind: e.kind } },
      h('td', {}, name),
      h('td', { class: 'num' }, isDir ? '—' : formatBytes(e.size)),
      h('td', {}, formatTime(e.modified)),
      h('td', { class: 'row-actions' },
        e.kind === 'file' ? act('Download', (b) => guarded(b, this.error, () => Api.download(Api.filePath(this.app, path), e.name))) : null,
        act('Rename', () => this.rename(e)),
        act('Delete', () => this.remove(e), 'danger-text')));
  }

  async newFolder() {
    const input = h('input', { id: 'new-folder-name', autocomplete: 'off', required: true });
    const made = await openDialog({
      title: 'New Folder',
      body: [h('label', { for: 'new-folder-name' }, 'Name'), input],
      okLabel: 'Create',
      canOk: () => input.value.trim() !== '',
      onOk: async () => {
        const name = input.value.trim();
        await Api.raw('POST', Api.filePath(this.app, this.join(name)) + '?mkdir=1');
        return name;
      },
    });
    if (made) await this.refresh();
  }

  /** Renames within this folder; a name with slashes moves it (relative to this folder). */
  async rename(e) {
    const input = h('input', { id: 'rename-name', autocomplete: 'off', spellcheck: 'false', required: true, value: e.name });
    const wanted = () => input.value.trim().replace(/\/+$/, '');
    const done = openDialog({
      title: e.kind === 'dir' ? 'Rename folder' : 'Rename file',
      body: [h('label', { for: 'rename-name' }, 'New name for ', h('code', {}, e.name)), input],
      okLabel: 'Rename',
      canOk: () => wanted() !== '' && wanted() !== e.name,
      onOk: async () => {
        const to = this.join(wanted());
        try {
          await Api.raw('POST', Api.filePath(this.app, this.join(e.name)) + '?rename_to=' + encodeURIComponent(to),
            { headers: this.ifMatch(e) });
        } catch (ex) {
          if (isChanged(ex)) return { changed: true };
          throw ex;
        }
        return to;
      },
    });
    // The name without its extension is selected, as desktop file managers do.
    const dot = e.name.lastIndexOf('.');
    if (e.kind !== 'dir' && dot > 0) input.setSelectionRange(0, dot);
    const result = await done;
    if (result && result.changed) this.showChanged(this.join(e.name));
    else if (result) await this.refresh();
  }

  async remove(e) {
    const isDir = e.kind === 'dir';
    const done = await openDialog({
      title: isDir ? 'Delete folder' : 'Delete file',
      body: h('p', {}, 'Delete ', h('code', {}, this.join(e.name)),
        isDir ? ' and everything in it' : '', '? This cannot be undone.'),
      okLabel: 'Delete',
      danger: true,
      onOk: async () => {
        try {
          await Api.raw('DELETE', Api.filePath(this.app, this.join(e.name)) + (isDir ? '?recursive=1' : ''),
            { headers: this.ifMatch(e) });
        } catch (ex) {
          if (isChanged(ex)) return { changed: true };
          throw ex;
        }
        return true;
      },
    });
    if (done && done.changed) this.showChanged(this.join(e.name));
    else if (done) await this.refresh();
  }

  async exportTar() {
    this.showError('');
    this.showNotice('Preparing the export…');
    try {
      await Api.download(Api.appPath(this.app, '/mount/export'), this.app + '-mount.tar.gz');
      this.showNotice('');
    } catch (e) {
      this.showNotice('');
      this.showError(e.message);
    }
  }

  async importArchive(file) {
    this.showError('');
    this.showNotice('Importing ' + file.name + '…');
    try {
      const q = this.dir ? '?path=' + encodeURIComponent(this.dir) : '';
      const res = await Api.raw('POST', Api.appPath(this.app, '/mount/import') + q, { body: file,
        headers: { 'Content-Type': 'application/octet-stream' } });
      const report = await res.json().catch(() => null);
      const n = report && report.files;
      this.showNotice('Imported ' + file.name + (n === undefined || n === null ? '' : ': ' + n + (n === 1 ? ' file' : ' files')) + '.');
    } catch (e) {
      this.showNotice('');
      this.showError('Import of ' + file.name + ' failed: ' + e.message);
    }
    await this.refresh();
  }

  /** Files and folders dropped from the desktop: folders are walked, keeping their paths. */
  async dropped(dt) {
    const jobs = [];
    const items = dt.items ? [...dt.items].filter((i) => i.kind === 'file') : [];
    const entries = items.map((i) => (i.webkitGetAsEntry ? i.webkitGetAsEntry() : null));
    if (entries.length && entries.every(Boolean)) {
      for (const entry of entries) await walkEntry(entry, '', jobs);
    } else {
      // Not every drop offers entries (a DataTransfer built by a page has none): its files
      // are then uploaded as they are.
      for (const f of dt.files) jobs.push({ file: f, rel: f.name });
    }
    this.enqueue(jobs);
  }

  enqueue(jobs) {
    if (!jobs.length) return;
    this.showError('');
    for (const j of jobs) {
      const u = new Upload(this, j.file, j.rel, this.uploadConditions(j.rel));
      this.uploads.push(u);
      this.uploadList.append(u.el);
    }
    this.pump();
  }

  /**
   * A file dropped into this folder overwrites only the version listed here (If-Match), or
   * is created only if nothing has that name yet (If-None-Match: *). Files inside dropped
   * folders go where this listing cannot see, so they are uploaded without a condition.
   */
  uploadConditions(rel) {
    if (rel.includes('/')) return {};
    const e = this.entries.get(rel);
    if (!e) return { 'If-None-Match': '*' };
    return e.kind === 'file' ? this.ifMatch(e) : {};
  }

  /** Two uploads at a time: enough to keep the link busy without starving the listing. */
  pump() {
    while (this.active < 2) {
      const next = this.uploads.find((u) => u.state === 'queued');
      if (!next) break;
      this.active += 1;
      next.start().finally(() => {
        this.active -= 1;
        this.pump();
        if (!this.uploads.some((u) => u.state === 'queued' || u.state === 'uploading')) this.refresh();
      });
    }
  }
}

function hasFiles(e) {
  return e.dataTransfer && [...e.dataTransfer.types].includes('Files');
}

/** Walks a dropped FileSystemEntry, collecting { file, rel } for every file under it. */
async function walkEntry(entry, prefix, out) {
  if (entry.isFile) {
    const file = await new Promise((res, rej) => entry.file(res, rej));
    out.push({ file, rel: prefix + entry.name });
    return;
  }
  if (!entry.isDirectory) return;
  const reader = entry.createReader();
  // readEntries returns at most ~100 entries per call: read until it returns none.
  for (;;) {
    const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
    if (!batch.length) break;
    for (const child of batch) await walkEntry(child, prefix + entry.name + '/', out);
  }
}

/** One file's upload: a row with a progress bar, a status and a Cancel button. */
class Upload {
  constructor(explorer, file, rel, conditions) {
    this.explorer = explorer;
    this.file = file;
    this.dir = explorer.dir;
    this.rel = rel;
    const path = explorer.join(rel);
    this.path = path;
    this.conditions = conditions;
    this.state = 'queued';
    this.bar = h('progress', { max: file.size || 1, value: 0, 'aria-label': 'Upload of ' + path });
    this.status = h('span', { class: 'upload-status' }, 'queued');
    this.cancelButton = h('button', { type: 'button', class: 'small', onclick: () => this.cancel(),
      'aria-label': 'Cancel upload of ' + path }, 'Cancel');
    this.dismiss = h('button', { type: 'button', class: 'small', hidden: true, 'aria-label': 'Dismiss ' + path,
      onclick: () => this.el.remove() }, '×');
    this.el = h('li', { class: 'upload', dataset: { path, state: 'queued' } },
      h('span', { class: 'upload-name', title: path }, path), this.bar, this.status, this.cancelButton, this.dismiss);
    this.handle = null;
  }

  setState(state, text) {
    this.state = state;
    this.el.dataset.state = state;
    this.status.textContent = text;
    if (state !== 'queued' && state !== 'uploading') {
      this.cancelButton.hidden = true;
      this.dismiss.hidden = false;
    }
  }

  async start() {
    if (this.state !== 'queued') return;
    this.setState('uploading', '0%');
    const started = performance.now();
    this.handle = Api.upload(Api.filePath(this.explorer.app, this.path), this.file, (loaded, total) => {
      this.bar.max = total || 1;
      this.bar.value = loaded;
      this.status.textContent = total ? Math.floor((loaded / total) * 100) + '%' : formatBytes(loaded);
    }, this.conditions);
    try {
      const text = await this.handle.promise;
      let answer = null;
      try { answer = JSON.parse(text); } catch (_notJson) { answer = null; }
      // A second upload of the same name, before the listing is refreshed, replaces this one.
      const ex = this.explorer;
      if (answer && answer.etag && !this.rel.includes('/') && ex.dir === this.dir) {
        ex.entries.set(this.rel, { name: this.rel, kind: 'file', etag: answer.etag });
      }
      this.bar.value = this.bar.max;
      const secs = (performance.now() - started) / 1000;
      this.setState('done', 'uploaded ' + formatBytes(this.file.size) + ' in ' + secs.toFixed(1) + ' s');
      setTimeout(() => { if (this.state === 'done') this.el.remove(); }, 8000);
    } catch (e) {
      if (e.code === 'cancelled') this.setState('cancelled', 'cancelled');
      else if (isChanged(e)) {
        this.setState('failed', 'changed meanwhile — not uploaded');
        this.explorer.showChanged(this.path);
      } else this.setState('failed', e.message);
    }
  }

  cancel() {
    if (this.state === 'queued') this.setState('cancelled', 'cancelled');
    else if (this.state === 'uploading' && this.handle) this.handle.abort();
  }
}
