// The JSON API client. Every call sends the token in the Authorization header: the server never
// accepts a cookie, so another site cannot drive a signed-in browser.
'use strict';

const TOKEN_KEY = 'slipway.token';

/** An error the server (or the network) gave, with the message a user can act on. */
class ApiError extends Error {
  constructor(message, status, code) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code || '';
  }
}

const Api = {
  token() { return sessionStorage.getItem(TOKEN_KEY); },
  setToken(t) { sessionStorage.setItem(TOKEN_KEY, t); },
  clearToken() { sessionStorage.removeItem(TOKEN_KEY); },

  /** Called with the error when the server says the token is no longer valid. */
  onUnauthorized: null,

  headers(extra) {
    const h = Object.assign({}, extra || {});
    const t = Api.token();
    if (t) h.Authorization = 'Bearer ' + t;
    return h;
  },

  appPath(app, rest) {
    return '/api/apps/' + encodeURIComponent(app) + (rest || '');
  },

  /** `dir/sub file` -> `dir/sub%20file`: each segment encoded, the slashes kept. */
  filePath(app, path) {
    const enc = String(path || '').split('/').filter(Boolean).map(encodeURIComponent).join('/');
    return Api.appPath(app, '/mount/files/' + enc);
  },

  /** Turns a failed response into an ApiError carrying the server's own message. */
  async failure(res) {
    let message = res.status + ' ' + res.statusText;
    let code = '';
    const text = await res.text().catch(() => '');
    try {
      const body = JSON.parse(text);
      if (body && body.error) { message = body.error; code = body.code || ''; }
    } catch (_notJson) {
      if (text.trim()) message = text.trim().slice(0, 500);
    }
    const err = new ApiError(message, res.status, code);
    if (res.status === 401 && Api.onUnauthorized) Api.onUnauthorized(err);
    return err;
  },

  /** fetch with the token; throws ApiError unless the response is 2xx. */
  async raw(method, url, opts) {
    opts = opts || {};
    let res;
    try {
      res = await fetch(url, {
        method,
        headers: Api.headers(opts.headers),
        body: opts.body,
        signal: opts.signal,
        credentials: 'omit',
        cache: 'no-store',
      });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new ApiError('The server could not be reached: ' + e.message, 0, 'network');
    }
    if (!res.ok) throw await Api.failure(res);
    return res;
  },

  async json(method, url, body) {
    const opts = {};
    if (body !== undefined) {
      opts.body = JSON.stringify(body);
      opts.headers = { 'Content-Type': 'application/json' };
    }
    const res = await Api.raw(method, url, opts);
    const text = await res.text();
    return text ? JSON.parse(text) : null;
  },

  get(url) { return Api.json('GET', url); },

  /**
   * Reads a streamed NDJSON response (deploy progress, log tails): `{"line": "..."}` per output
   * line, as it happens, then `{"done": true, "ok": ..., "exit_code": ..., "error": ...}`.
   * Calls onLine with each line; resolves with the final `done` object (null if the stream
   * ended without one, e.g. the server went away).
   */
  async stream(res, onLine) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    let done = null;
    const emit = (text) => {
      if (!text.trim()) return;
      let msg;
      try {
        msg = JSON.parse(text);
      } catch (_notJson) {
        throw new ApiError('The server sent a malformed stream line: ' + text.slice(0, 200), res.status, 'bad_stream');
      }
      if (typeof msg.line === 'string') onLine(msg.line);
      if (msg.done) done = msg;
    };
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      buf += decoder.decode(chunk.value, { stream: true });
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        emit(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    }
    emit(buf + decoder.decode());
    return done;
  },

  /**
   * A PUT of one file's bytes with upload progress; returns { promise, abort }. XHR rather than
   * fetch because fetch cannot report upload progress. `headers` may hold If-Match or
   * If-None-Match, so that an upload never overwrites a file that changed meanwhile.
   */
  upload(url, file, onProgress, headers) {
    const xhr = new XMLHttpRequest();
    const promise = new Promise((resolve, reject) => {
      xhr.open('PUT', url);
      xhr.withCredentials = false;
      const t = Api.token();
      if (t) xhr.setRequestHeader('Authorization', 'Bearer ' + t);
      xhr.setRequestHeader('Content-Type', 'application/octet-stream');
      for (const [k, v] of Object.entries(headers || {})) xhr.setRequestHeader(k, v);
      xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) { resolve(xhr.responseText); return; }
        let message = xhr.status + ' ' + xhr.statusText;
        let code = '';
        try {
          const body = JSON.parse(xhr.responseText);
          if (body && body.error) { message = body.error; code = body.code || ''; }
        } catch (_notJson) {
          if (xhr.responseText.trim()) message = xhr.responseText.trim().slice(0, 500);
        }
        const err = new ApiError(message, xhr.status, code);
        if (xhr.status === 401 && Api.onUnauthorized) Api.onUnauthorized(err);
        reject(err);
      };
      xhr.onerror = () => reject(new ApiError('The upload was interrupted (network error or the server closed the connection).', 0, 'network'));
      xhr.onabort = () => reject(new ApiError('Cancelled', 0, 'cancelled'));
      xhr.send(file);
    });
    return { promise, abort: () => xhr.abort() };
  },

  /** Fetches a URL with the token and hands the bytes to the browser as a download. */
  async download(url, filename) {
    const res = await Api.raw('GET', url);
    const blob = await res.blob();
    const href = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = href;
    a.download = filename;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(href), 60000);
  },
};

/** 1536 -> "1.5 KiB", as the CLI prints sizes. */
function formatBytes(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return '—';
  n = Number(n);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return (i === 0 ? String(n) : n.toFixed(1)) + ' ' + units[i];
}

/** Seconds since the epoch -> local date and time. */
function formatTime(secs) {
  if (!secs) return '—';
  const d = new Date(Number(secs) * 1000);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

function formatDuration(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return Math.round(ms) + ' ms';
  const s = ms / 1000;
  if (s < 60) return s.toFixed(1) + ' s';
  return Math.floor(s / 60) + ' min ' + Math.round(s % 60) + ' s';
}

/** 3725 -> "1 h 2 min", as `slipway ps` reads. */
function formatUptime(secs) {
  if (secs === null || secs === undefined) return '—';
  if (secs < 60) return secs + ' s';
  if (secs < 3600) return Math.floor(secs / 60) + ' min ' + (secs % 60) + ' s';
  if (secs < 86400) return Math.floor(secs / 3600) + ' h ' + Math.floor((secs % 3600) / 60) + ' min';
  return Math.floor(secs / 86400) + ' d ' + Math.floor((secs % 86400) / 3600) + ' h';
}
