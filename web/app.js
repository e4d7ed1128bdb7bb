// The airgap console: plain JavaScript against /api/v1, no framework, no CDN.
'use strict';

const $ = (id) => document.getElementById(id);
let csrfToken = null;
const CHUNK = 8 * 1024 * 1024;

/** fetch /api/v1 with the session cookie and, for changes, the CSRF token. */
async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (options.method && options.method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  if (options.json !== undefined) {
    headers['content-type'] = 'application/json';
    options.body = JSON.stringify(options.json);
  }
  const res = await fetch(`/api/v1${path}`, { credentials: 'same-origin', ...options, headers });
  if (res.status === 401 && path !== '/session') {
    showLogin();
    throw new Error('log in first');
  }
  const text = await res.text();
  const body = text ? JSON.parse(text) : null;
  if (!res.ok) {
    const err = new Error(body && body.message ? `${body.message}${body.hint ? ` (${body.hint})` : ''}` : `HTTP ${res.status}`);
    err.status = res.status;
    err.body = body;
    throw err;
  }
  return body;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function bytes(n) {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = -1;
  while (v >= 1000 && u < units.length - 1) { v /= 1000; u++; }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[u]}`;
}

function fillRows(tbody, rows, empty = 'nothing yet') {
  tbody.replaceChildren(...rows.map((cells) => {
    const tr = el('tr');
    for (const cell of cells) {
      const td = el('td');
      if (cell instanceof Node) td.append(cell); else td.textContent = cell === null || cell === undefined ? '' : String(cell);
      tr.append(td);
    }
    return tr;
  }));
  if (!rows.length) {
    const tr = el('tr');
    const td = el('td', empty, 'hint');
    td.colSpan = tbody.closest('table').querySelectorAll('th').length;
    tr.append(td);
    tbody.append(tr);
  }
  applySearch();
}

function showLogin() {
  $('app-view').hidden = true;
  $('logout').hidden = true;
  $('login-view').hidden = false;
  $('summary').textContent = '';
  $('username').focus();
}

async function showApp() {
  $('login-view').hidden = true;
  $('app-view').hidden = false;
  $('logout').hidden = false;
  await refresh();
}

/** Rows per page of every list. */
const PAGE = 100;

/**
 * The paged lists: each shows one page, fetched with its cursor (`after`), and keeps the
 * cursors of the pages before it for Previous. A refresh fetches the pages shown again.
 */
const lists = {
  releases: pagedList('releases', '/releases', (page) => renderReleases(page)),
  images: pagedList('images', '/images', (page, empty) => fillRows($('images'), artifactRows(page.images), empty), true),
  charts: pagedList('charts', '/charts', (page, empty) => fillRows($('charts'), artifactRows(page.charts), empty), true),
  packs: pagedList('packs', '/packs', (page, empty) => fillRows($('packs'), artifactRows(page.packs), empty), true),
  files: pagedList('files', '/files', (page, empty) => fillRows($('files'), artifactRows(page.files), empty), true),
};
const ARTIFACT_LISTS = ['images', 'charts', 'packs', 'files'];

function artifactRows(list) {
  return list.map((a) => [a.target, el('span', a.digest, 'digest'), bytes(a.size), a.releaseVersion]);
}

/**
 * A list of `path` shown a page at a time in the table `name`, with the buttons
 * `<name>-prev` / `<name>-next`, the range `<name>-range` and, for artifacts, the filter
 * `<name>-q` (sent as `q`) and the release chosen in `content-release`.
 */
function pagedList(name, path, render, artifacts = false) {
  const list = { after: null, before: [], q: '', seq: 0 };
  list.load = async () => {
    const seq = ++list.seq;
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (list.after) params.set('after', list.after);
    if (artifacts && list.q) params.set('q', list.q);
    const release = artifacts ? $('content-release').value : '';
    if (release) params.set('release', release);
    let page;
    try {
      page = await api(`${path}?${params}`);
    } catch (err) {
      if (seq !== list.seq) return;
      if (err.status === 404 && release) {
        // The release chosen is gone (deleted): show every release again.
        $('content-release').value = '';
        return list.load();
      }
      if (err.status === 400 && list.after) return list.first();
      $(`${name}-range`).textContent = `could not load: ${err.message}`;
      throw err;
    }
    if (seq !== list.seq) return; // a newer request (another page, another filter) answers instead
    const rows = page[name];
    if (!rows.length && list.before.length) return list.first(); // the rows of this page went (deleted)
    render(page, list.q ? 'nothing matches the filter' : 'nothing yet');
    list.next = page.next;
    const from = list.before.length * PAGE;
    $(`${name}-range`).textContent = page.total ? `${from + 1}–${from + rows.length} of ${page.total}` : '';
    $(`${name}-prev`).disabled = !list.before.length;
    $(`${name}-next`).disabled = !page.next;
  };
  list.first = () => {
    list.after = null;
    list.before = [];
    return list.load();
  };
  /** Wires Previous, Next and the filter (called once the page has loaded). */
  list.wire = () => {
    $(`${name}-next`).addEventListener('click', () => {
      if (!list.next) return;
      list.before.push(list.after);
      list.after = list.next;
      void list.load().catch(() => {});
    });
    $(`${name}-prev`).addEventListener('click', () => {
      if (!list.before.length) return;
      list.after = list.before.pop();
      void list.load().catch(() => {});
    });
    const filter = $(`${name}-q`);
    if (!filter) return;
    let timer;
    filter.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        list.q = filter.value.trim();
        void list.first().catch(() => {});
      }, 250);
    });
  };
  return list;
}

/** Fills `select` with `first` and the `versions`, keeping its choice (or choosing `pick`); `keep` keeps a choice that is not among them. */
function fillVersions(select, versions, first, pick, keep) {
  const chosen = select.value || pick;
  const values = keep && chosen && !versions.includes(chosen) ? [chosen, ...versions] : versions;
  select.replaceChildren(...first, ...values.map((v) => { const o = el('option', v); o.value = v; return o; }));
  if (chosen) select.value = chosen;
}

function renderReleases(page) {
  fillRows($('releases'), page.releases.map((r) => [
    r.version, r.name, r.created.slice(0, 10), r.importedAt.replace('T', ' ').slice(0, 19),
    r.current ? 'current' : r.needsReimport ? 'needs re-import' : '',
    r.images, bytes(r.diskBytes || 0), r.current ? '' : bytes(r.exclusiveBytes || 0),
    r.current ? '' : deleteButton(r),
  ]));
  // The releases shown, oldest first for the comparison; the artifact lists' release keeps
  // its choice when the releases page moves on (a deleted one is dropped when its list says 404).
  const versions = page.releases.map((r) => r.version).reverse();
  fillVersions($('diff-from'), versions, [], versions.length > 1 ? versions[versions.length - 2] : versions[0], false);
  fillVersions($('diff-to'), versions, [], page.current || versions[versions.length - 1], false);
  const every = el('option', 'every release');
  every.value = '';
  fillVersions($('content-release'), versions.slice().reverse(), [every], '', true);
}

async function refresh() {
  const [status, connection, events] = await Promise.all([
    api('/status'), api('/connection'), api('/events?limit=50'),
    ...Object.values(lists).map((list) => list.load()),
  ]);
  const current = status.release && status.release.current;
  $('summary').textContent = `${current ? `Current release: ${status.release.name} ${current}` : 'No release yet'} · ${status.healthy ? 'healthy' : 'DEGRADED'}`;
  const health = [
    ['Current release', current ? `${status.release.name} ${current}` : 'none yet'],
    ['Health', status.healthy ? 'healthy' : `DEGRADED: ${status.problems.join('; ')}`],
    ...(status.warnings || []).map((w) => ['Warning', w]),
    ...status.registries.map((r) => [`${r.name} registry`, `${r.url} · ${r.state}${r.healthy ? '' : ' (failing)'} · restarts ${r.restarts}`]),
    ['Registry volume', `${bytes(status.disk.usedBytes)} used of ${bytes(status.disk.totalBytes)}, ${bytes(status.disk.freeBytes)} free`],
    ['Certificate', `${status.certificate.subjectAltNames.join(', ')} · valid until ${status.certificate.notAfter.slice(0, 10)}`],
    ['Version', `airgap ${status.version}`],
  ];
  $('health').replaceChildren(...health.flatMap(([k, v]) => [el('dt', k), el('dd', v, k === 'Health' ? (status.healthy ? 'ok' : 'bad') : undefined)]));
  renderConnection(connection);
  fillRows($('events'), events.events.map((e) => [e.at.replace('T', ' ').slice(0, 19), e.actor, e.kind, e.message]));
}

/** A release's Delete button: asks first, saying what it frees, then deletes and collects garbage. */
function deleteButton(r) {
  const b = el('button', 'Delete');
  b.type = 'button';
  b.setAttribute('aria-label', `Delete release ${r.version}`);
  b.addEventListener('click', async () => {
    if (!confirm(`Delete release ${r.version}? It frees about ${bytes(r.exclusiveBytes || 0)}. Its images, charts, packs and files that no other release has are removed; garbage collection then runs (each registry stops for its turn).`)) return;
    b.disabled = true;
    $('release-action').className = '';
    $('release-action').textContent = `Deleting ${r.version} and collecting garbage…`;
    try {
      const res = await api(`/releases/${encodeURIComponent(r.version)}/delete`, { method: 'POST' });
      $('release-action').className = 'ok';
      $('release-action').textContent = `Deleted ${res.version}: ${res.manifestsDeleted} manifests; garbage collection gave back ${bytes(res.gc.bytesReclaimed)}.`;
    } catch (err) {
      $('release-action').className = 'error';
      $('release-action').textContent = `Delete failed: ${err.message}`;
    }
    await refresh().catch(() => {});
  });
  return b;
}

/** The comparison of two releases: per kind, what was added, removed and changed. */
function renderDiff(d) {
  const out = [el('p', `${d.from} → ${d.to}: ${bytes(d.bytesAddedOrChanged)} added or changed`)];
  for (const kind of ['images', 'charts', 'packs', 'files']) {
    const k = d[kind];
    out.push(el('h4', `${kind}: ${k.added.length} added, ${k.removed.length} removed, ${k.changed.length} changed, ${k.unchanged} unchanged`));
    const rows = [
      ...k.added.map((i) => ['added', i.target, i.digest]),
      ...k.removed.map((i) => ['removed', i.target, i.digest]),
      ...k.changed.map((i) => ['changed', i.target, `${i.from} → ${i.to}`]),
    ];
    if (!rows.length) continue;
    const table = el('table');
    const tbody = el('tbody');
    for (const cells of rows.slice(0, 200)) {
      const tr = el('tr');
      cells.forEach((c, i) => tr.append(el('td', c, i === 2 ? 'digest' : undefined)));
      tbody.append(tr);
    }
    table.append(tbody);
    out.push(table);
    if (rows.length > 200) out.push(el('p', `… and ${rows.length - 200} more ('airgap diff --json' lists all)`, 'hint'));
  }
  $('diff').replaceChildren(...out);
}

function copyButton(text, label) {
  const b = el('button', 'Copy');
  b.type = 'button';
  b.setAttribute('aria-label', `Copy ${label}`);
  b.addEventListener('click', () => copy(text(), b));
  return b;
}

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = el('textarea');
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
  const before = button.textContent;
  button.textContent = 'Copied';
  setTimeout(() => { button.textContent = before; }, 1200);
}

function renderConnection(c) {
  const services = [['Repository', c.repository], ['Image registry', c.imageRegistry], ['Pack registry', c.packRegistry], ['Console', c.console]];
  fillRows($('connection'), services.map(([name, s]) => {
    const url = el('span');
    url.append(el('code', s.url), ' ', copyButton(() => s.url, `${name} URL`));
    const pass = el('span');
    if (s.password) pass.append(el('code', s.password), ' ', copyButton(() => s.password, `${name} password`));
    else pass.append(el('span', '••••••••', 'hint'));
    return [name, url, s.username, pass];
  }));
  $('ca-base64').value = c.caCertificateBase64;
}

function applySearch() {
  const q = $('search').value.trim().toLowerCase();
  for (const tbody of document.querySelectorAll('tbody.searchable')) {
    for (const tr of tbody.rows) tr.hidden = q !== '' && !tr.textContent.toLowerCase().includes(q);
  }
}

function setProgress(label, value) {
  $('progress').hidden = false;
  $('progress-label').textContent = label;
  $('progress-bar').value = value;
}

const STAGES = { open: 'Verifying the file', preflight: 'Checking versions and space', images: 'Setting up Images', charts: 'Setting up Charts', packs: 'Setting up Packs', files: 'Setting up Files', tags: 'Publishing tags', commit: 'Recording the release' };

/** Uploads `file` in chunks (resuming from the server's offset after a failure), then imports it. */
async function upload(file) {
  const allowDowngrade = $('allow-downgrade').checked;
  const created = await api('/uploads', { method: 'POST', json: { name: file.name, size: file.size } });
  let offset = 0;
  let failures = 0;
  while (offset < file.size) {
    const end = Math.min(offset + CHUNK, file.size);
    try {
      const res = await api(`/uploads/${created.id}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'content-range': `bytes ${offset}-${end - 1}/${file.size}` },
        body: file.slice(offset, end),
      });
      offset = res.offset;
      failures = 0;
    } catch (err) {
      if (err.status === 401 || ++failures > 8) {
        await api(`/uploads/${created.id}`, { method: 'DELETE' }).catch(() => {});
        throw err;
      }
      // The link may still be down: wait longer each time, then ask where to resume.
      for (;;) {
        setProgress(`Connection lost; retrying (${failures})…`, Math.round((offset / file.size) * 100));
        await new Promise((r) => setTimeout(r, Math.min(30000, 1000 * 2 ** failures)));
        try {
          offset = (await api(`/uploads/${created.id}`)).offset;
          break;
        } catch (probe) {
          if (probe.status === 404 || probe.status === 401 || ++failures > 8) throw probe;
        }
      }
    }
    setProgress(`Uploading ${file.name}: ${bytes(offset)} of ${bytes(file.size)}`, Math.round((offset / file.size) * 100));
  }
  const queued = await api('/imports', { method: 'POST', json: { uploadId: created.id, allowDowngrade } });
  await follow(queued.import.id);
}

/** Follows an import's server-sent events until it is done. */
function follow(id) {
  return new Promise((resolve, reject) => {
    const source = new EventSource(`/api/v1/imports/${id}/events`);
    source.addEventListener('update', (e) => {
      const u = JSON.parse(e.data);
      if (u.state === 'queued') return setProgress(`Import ${id}: waiting, ${u.queuePosition} ahead`, 0);
      const pct = u.bytesTotal ? Math.round((u.bytesDone / u.bytesTotal) * 100) : u.itemsTotal ? Math.round((u.itemsDone / u.itemsTotal) * 100) : 0;
      setProgress(`Import ${id}: ${STAGES[u.stage] || u.stage}${u.bytesTotal ? ` · ${bytes(u.bytesDone)} of ${bytes(u.bytesTotal)}` : ''}`, pct);
    });
    source.addEventListener('done', (e) => {
      source.close();
      const row = JSON.parse(e.data);
      if (row.state === 'failed') {
        setProgress(`Import ${id} failed: ${row.error.message}${row.error.hint ? ` (${row.error.hint})` : ''}`, 0);
        $('progress-label').className = 'error';
        reject(new Error(row.error.message));
        return;
      }
      const r = row.result;
      setProgress(r.status === 'unchanged' ? `Setup Completed: ${r.name} ${r.version} was already installed` : `Setup Completed: ${r.name} ${r.version} (${r.action}), ${r.blobsPushed} blobs pushed (${bytes(r.bytesPushed)})`, 100);
      $('progress-label').className = 'ok';
      resolve(row);
    });
    source.onerror = () => { /* EventSource reconnects by itself */ };
  });
}

async function startUpload(file) {
  if (!file) return;
  $('progress-label').className = '';
  setProgress(`Uploading ${file.name}`, 0);
  try {
    await upload(file);
  } catch (err) {
    $('progress-label').className = 'error';
    $('progress-label').textContent = `Upload failed: ${err.message}`;
  }
  await refresh().catch(() => {});
}

document.addEventListener('DOMContentLoaded', async () => {
  $('login-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    $('login-error').textContent = '';
    try {
      const session = await api('/session', { method: 'POST', json: { username: $('username').value, password: $('password').value } });
      csrfToken = session.csrfToken;
      $('password').value = '';
      await showApp();
    } catch (err) {
      $('login-error').textContent = err.status === 429 ? err.message : 'Wrong username or password.';
    }
  });
  $('logout').addEventListener('click', async () => {
    await api('/session', { method: 'DELETE' }).catch(() => {});
    csrfToken = null;
    showLogin();
  });
  $('reveal').addEventListener('click', async () => renderConnection(await api('/connection?reveal=true')));
  for (const b of document.querySelectorAll('button[data-copy]')) b.addEventListener('click', () => copy($(b.dataset.copy).value, b));
  $('search').addEventListener('input', applySearch);
  for (const list of Object.values(lists)) list.wire();
  $('content-release').addEventListener('change', () => {
    for (const name of ARTIFACT_LISTS) void lists[name].first().catch(() => {});
  });
  $('diff-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      renderDiff(await api(`/diff?from=${encodeURIComponent($('diff-from').value)}&to=${encodeURIComponent($('diff-to').value)}`));
    } catch (err) {
      $('diff').replaceChildren(el('p', `Compare failed: ${err.message}`, 'error'));
    }
  });
  $('backup-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    $('backup-result').className = '';
    $('backup-result').textContent = 'Writing the backup…';
    try {
      const res = await fetch('/api/v1/backup', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'content-type': 'application/json', 'x-csrf-token': csrfToken || '' },
        body: JSON.stringify({ password: $('backup-password').value }),
      });
      if (!res.ok) {
        const body = await res.json().catch(() => null);
        throw new Error(body && body.message ? body.message : `HTTP ${res.status}`);
      }
      const name = (/filename="([^"]+)"/.exec(res.headers.get('content-disposition') || '') || [])[1] || 'airgap-backup.tar';
      const url = URL.createObjectURL(await res.blob());
      const a = el('a');
      a.href = url;
      a.download = name;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      $('backup-password').value = '';
      $('backup-result').className = 'ok';
      $('backup-result').textContent = `Saved ${name}. It holds every password and the CA key: keep it safe.`;
    } catch (err) {
      $('backup-result').className = 'error';
      $('backup-result').textContent = `Backup failed: ${err.message}`;
    }
  });
  $('gc').addEventListener('click', async () => {
    $('gc').disabled = true;
    $('gc-result').className = '';
    $('gc-result').textContent = 'Collecting garbage (each registry stops for its turn)…';
    try {
      const r = await api('/gc', { method: 'POST' });
      $('gc-result').className = 'ok';
      $('gc-result').textContent = `Gave back ${bytes(r.bytesReclaimed)} in ${r.seconds.toFixed(1)} s.`;
    } catch (err) {
      $('gc-result').className = 'error';
      $('gc-result').textContent = `Garbage collection failed: ${err.message}`;
    }
    $('gc').disabled = false;
    await refresh().catch(() => {});
  });
  $('upload-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void startUpload($('upload-file').files[0]);
  });
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    void startUpload(e.dataTransfer.files[0]);
  });
  drop.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') $('upload-file').click(); });
  try {
    const session = await api('/session');
    csrfToken = session.csrfToken;
    await showApp();
  } catch {
    showLogin();
  }
});
