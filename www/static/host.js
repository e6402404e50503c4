// /hosts/NAME: one host as a sysadmin reads it: status and since when, its
// facts (OS, kernel, architecture, uptime, availability), active alerts,
// Nagios checks as a status table, each monitor plugin's figures with
// units and charts of its history with time axes and thresholds; values
// that do not change are shown as values, not charts. With an admin
// token, a person silences the host or one of its alerts, acknowledges an
// alert, or forgets the host. A job (`hbc run`) shows its recent runs,
// newest first, each run's output as text.
'use strict';

(() => {
  const HISTORY = 50;
  const MAX_CHARTS = 24;
  const name = decodeURIComponent(location.pathname.split('/').pop());
  const api = `/api/0/hosts/${encodeURIComponent(name)}`;
  let host = null;
  let latest = {};
  const history = new Map();
  let alerts = [];
  let dirty = new Set();

  document.title = `hbd · ${name}`;
  document.getElementById('name').textContent = name;

  async function load() {
    try {
      host = await hbd.getJSON(api);
      latest = (await hbd.getJSON(`${api}/plugins`)).plugins;
      alerts = hbd.withHeld((await hbd.getJSON(`${api}/alerts`)).alerts);
      for (const [plugin, sample] of Object.entries(latest)) {
        if (sample.kind === 'monitor') {
          history.set(plugin, (await hbd.getJSON(`${api}/plugins/${encodeURIComponent(plugin)}?limit=${HISTORY}`)).samples);
        }
      }
      document.getElementById('missing').hidden = true;
      dirty = new Set(['all']);
      draw();
    } catch (e) {
      const missing = document.getElementById('missing');
      missing.hidden = false;
      missing.textContent = `Cannot show ${name}: ${e.message}`;
    }
  }

  function fact(list, term, value, className) {
    list.appendChild(hbd.el('dt', term));
    list.appendChild(hbd.el('dd', value, className));
  }

  // The host's silence and unreachability, and a silence's end button.
  function drawMarks() {
    const box = document.getElementById('marks');
    box.replaceChildren(...hbd.marks(host), ...hbd.tagMarks(host));
    const s = host.silenced;
    if (s && typeof s.id === 'string' && !s.id.startsWith('maintenance:')) {
      box.appendChild(hbd.button('end silence', async () => {
        say(await hbd.endSilence(s.id) || 'silence ended');
        load();
      }));
    }
  }

  function say(text, isError) {
    const message = document.getElementById('operator-message');
    message.textContent = text;
    message.className = isError ? 'error' : 'muted';
  }

  // Forgets the host (and, if asked, its DNS records), then goes to the overview.
  function forget() {
    let dns;
    hbd.dialog('forget', `Forget ${name}?`, (form) => {
      form.appendChild(hbd.el('p', `Its state, history and alerts go. If ${name} sends again, it is a new host.`));
      const row = hbd.el('label', null, 'check');
      dns = hbd.input('forget-dns', '', 'checkbox');
      row.append(dns, document.createTextNode('also remove its DNS records'));
      form.appendChild(row);
    }, 'forget', async () => {
      const answer = await hbd.api.forget(name, dns.checked);
      if (answer.status === 404) return `${name} is not known to hbd (forgotten already?)`;
      if (!answer.ok) return hbd.writeError(answer, 'forgetting a host');
      location.assign('/');
      return null;
    });
    document.querySelector('#forget-form button[type=submit]').classList.add('danger');
  }

  function drawHeader() {
    if (!host) return;
    const state = hbd.statusOf(host);
    const status = document.getElementById('status');
    status.textContent = state;
    status.className = `pill status-${state}`;
    drawMarks();
    const level = host.alert_level || 'OK';
    const badge = document.getElementById('level');
    badge.textContent = level;
    badge.className = `pill level-${level}`;
    const facts = document.getElementById('facts');
    facts.replaceChildren();
    fact(facts, `${state[0].toUpperCase()}${state.slice(1)} since`, `${hbd.dateTime(host.status_since)} (${hbd.duration(hbd.now() - host.status_since)})`);
    fact(facts, 'Last seen', hbd.ago(host.last_seen));
    fact(facts, 'Address', `${host.address} port ${host.port}`);
    if (host.job) {
      fact(facts, 'Kind', 'job');
      fact(facts, 'Runs every', `${hbd.number(host.interval)} s${typeof host.job.grace === 'number' ? ` (grace ${hbd.number(host.job.grace)} s)` : ''}`);
      if (typeof host.job.timeout === 'number') fact(facts, 'Timeout', `${hbd.number(host.job.timeout)} s`);
    } else {
      fact(facts, 'Heartbeat every', `${hbd.number(host.interval)} s`);
    }
    fact(facts, 'Latency', host.latency_ms === null || host.latency_ms === undefined ? '–' : `${hbd.number(host.latency_ms)} ms`);
    const pct = (v) => (v === null || v === undefined ? '–' : `${v.toFixed(v === 100 ? 0 : 3)} %`);
    fact(facts, 'Availability', `${pct(host.availability['24h'])} (24 h), ${pct(host.availability['7d'])} (7 d)`);
    const os = latest.os_info && latest.os_info.data;
    if (os) {
      fact(facts, 'System', [os.name || os.os, os.version].filter(Boolean).join(' '));
      if (os.kernel) fact(facts, 'Kernel', os.kernel);
      if (os.architecture) fact(facts, 'Architecture', os.architecture);
      if (typeof os.boot_time === 'number') fact(facts, 'Uptime', hbd.duration(hbd.now() - os.boot_time));
      if (typeof os.cpu_count === 'number') fact(facts, 'CPUs', os.cpu_count);
    }
    const latency = document.getElementById('latency');
    const points = (host.latency_history || []).map((p) => [p[0], p[1]]);
    latency.replaceChildren(points.length > 1 ? hbd.chart('round trip', points, 'ms', []) : hbd.el('p', 'Not measured by this client.', 'muted'));
  }

  // A job's runs: the API gives them oldest first; output only as text.
  function drawRuns() {
    const job = host && host.job;
    document.getElementById('runs-section').hidden = !job;
    if (!job) return;
    const runs = (Array.isArray(job.runs) ? job.runs : []).slice().reverse();
    document.querySelector('#runs tbody').replaceChildren(...runs.map((r) => {
      const row = hbd.el('tr', null, 'run');
      const level = { ok: 'OK', failed: 'CRITICAL', unfinished: 'UNKNOWN', running: 'WARNING' }[r.outcome] || 'UNKNOWN';
      row.appendChild(hbd.el('td', typeof r.started === 'number' ? hbd.dateTime(r.started) : '–'));
      row.appendChild(hbd.el('td', typeof r.duration_s === 'number' ? `${hbd.number(r.duration_s)} s` : r.outcome === 'running' ? `running for ${hbd.duration(hbd.now() - r.started)}` : '–'));
      row.appendChild(hbd.el('td', String(r.outcome), `level-${level}`));
      const exit = typeof r.signal === 'number' ? `signal ${r.signal}` : typeof r.exit_code === 'number' ? String(r.exit_code) : '–';
      row.appendChild(hbd.el('td', exit));
      const output = hbd.el('td', null, 'wrap');
      if (typeof r.message === 'string' && r.message) output.appendChild(hbd.el('p', r.message, 'run-message'));
      if (typeof r.output === 'string' && r.output) output.appendChild(hbd.el('pre', r.output, 'run-output'));
      row.appendChild(output);
      return row;
    }));
    // A tail is read from its end: the last lines say why a run failed.
    document.querySelectorAll('#runs pre.run-output').forEach((pre) => { pre.scrollTop = pre.scrollHeight; });
  }

  function drawAlerts() {
    const active = alerts.filter((a) => a.level !== 'OK');
    document.querySelector('#alerts tbody').replaceChildren(...active.map((a) => {
      const row = hbd.el('tr', null, a.heldBy ? 'problem-held' : null);
      row.appendChild(hbd.el('td', a.heldBy ? `${a.level} (held)` : a.level, a.heldBy ? 'held' : `level-${a.level}`));
      row.appendChild(hbd.el('td', a.heldBy ? `${hbd.subject(a)} (held while the host is down)` : hbd.subject(a)));
      row.appendChild(hbd.el('td', a.last_value === null ? '–' : hbd.withUnit(a.last_value, hbd.unitOf(a.metric_path))));
      row.appendChild(hbd.el('td', a.threshold === null ? '–' : hbd.withUnit(a.threshold, hbd.unitOf(a.metric_path))));
      row.appendChild(hbd.el('td', `${hbd.dateTime(a.since)} (${hbd.duration(hbd.now() - a.since)})`));
      const state = hbd.el('td', null, 'marked');
      state.append(...hbd.marks(a));
      row.appendChild(state);
      const actions = hbd.el('td', null, 'actions');
      if (a.acknowledged) {
        actions.appendChild(hbd.button('remove ack', async () => { say(await hbd.unack(name, a) || 'acknowledgement removed'); reloadAlerts(); }));
      } else {
        actions.appendChild(hbd.button('Acknowledge…', () => hbd.ackForm(name, a, () => { say('acknowledged'); reloadAlerts(); })));
      }
      const target = a.plugin === 'heartbeat' ? { host: name } : { host: name, plugin: a.plugin, metric_path: a.metric_path || '' };
      actions.appendChild(hbd.button('Silence…', () => hbd.silenceForm(target, () => { say('silenced'); load(); })));
      row.appendChild(actions);
      return row;
    }));
    document.getElementById('no-alerts').hidden = active.length > 0;
  }

  // Nagios ranges: `warn`/`crit` as {start, end, inside}; shown as written.
  function range(r) {
    if (!r) return null;
    const start = r.start === null || r.start === undefined ? '~' : r.start;
    const end = r.end === null || r.end === undefined ? '' : r.end;
    return `${r.inside ? '@' : ''}${start === 0 ? '' : `${start}:`}${end}`;
  }

  function drawNagios() {
    const checks = latest.nagios_runner && latest.nagios_runner.data && latest.nagios_runner.data.checks;
    document.getElementById('nagios-section').hidden = !checks;
    if (!checks) return;
    document.querySelector('#nagios tbody').replaceChildren(...Object.entries(checks).map(([check, r]) => {
      const row = hbd.el('tr');
      row.appendChild(hbd.el('td', check));
      row.appendChild(hbd.el('td', r.status, `level-${r.status}`));
      row.appendChild(hbd.el('td', r.output, 'wrap'));
      const perf = Object.entries(r.perfdata || {}).map(([label, p]) => {
        const bounds = [['warn', range(p.warn)], ['crit', range(p.crit)]].filter(([, v]) => v).map(([k, v]) => `${k} ${v}`);
        return `${label}=${hbd.number(p.value)}${p.uom || ''}${bounds.length ? ` (${bounds.join(', ')})` : ''}`;
      });
      row.appendChild(hbd.el('td', perf.join('; ') || '–', 'wrap'));
      return row;
    }));
  }

  // Thresholds to draw for a metric: from its alert rule, if any.
  function thresholdsOf(plugin, path) {
    const a = alerts.find((x) => x.plugin === plugin && x.metric_path === path);
    if (!a) return [];
    return [['warning', a.warning], ['critical', a.critical]].filter(([, v]) => typeof v === 'number').map(([lvl, value]) => ({ level: lvl, value }));
  }

  // The section of a plugin, made the first time it is drawn.
  function sectionOf(plugin) {
    const id = `plugin-${plugin}`;
    let section = document.getElementById(id);
    if (!section) {
      section = hbd.el('section');
      section.id = id;
      document.getElementById('plugins').appendChild(section);
    }
    return section;
  }

  function drawPlugin(plugin) {
    const section = sectionOf(plugin);
    const samples = history.get(plugin) || [];
    const sample = latest[plugin];
    section.replaceChildren(hbd.el('h2', plugin));
    if (sample && sample.error) section.appendChild(hbd.el('p', `error: ${sample.error}`, 'error'));
    const series = new Map();
    for (const s of samples) {
      if (!s.data) continue;
      for (const [path, value] of hbd.flatten(s.data, '', new Map(), 0)) {
        if (!series.has(path)) series.set(path, []);
        series.get(path).push([s.at, value]);
      }
    }
    const figures = hbd.el('dl', null, 'facts');
    const charts = hbd.el('div', null, 'charts');
    let drawn = 0;
    for (const [path, points] of series) {
      const unit = hbd.unitOf(path);
      const numeric = points.every((p) => typeof p[1] === 'number');
      const constant = points.every((p) => p[1] === points[0][1]);
      if (numeric && !constant && points.length > 1 && drawn < MAX_CHARTS) {
        charts.appendChild(hbd.chart(path, points, unit, thresholdsOf(plugin, path)));
        drawn += 1;
      } else {
        fact(figures, path, hbd.withUnit(points[points.length - 1][1], unit));
      }
    }
    if (figures.children.length) section.appendChild(figures);
    section.appendChild(charts);
  }

  function drawInfo(plugin) {
    if (plugin === 'os_info') return;
    const section = sectionOf(plugin);
    const figures = hbd.el('dl', null, 'facts');
    const data = latest[plugin] && latest[plugin].data;
    for (const [path, value] of hbd.flatten(data || {}, '', new Map(), 0)) fact(figures, path, hbd.withUnit(value, hbd.unitOf(path)));
    section.replaceChildren(hbd.el('h2', plugin), figures);
  }

  function draw() {
    const all = dirty.has('all');
    if (all || dirty.has('host')) drawHeader();
    if (all || dirty.has('runs')) drawRuns();
    if (all || dirty.has('alerts')) drawAlerts();
    if (all || dirty.has('nagios_runner')) drawNagios();
    for (const [plugin, sample] of Object.entries(latest)) {
      if (plugin === 'nagios_runner' || !(all || dirty.has(plugin))) continue;
      if (sample.kind === 'monitor') drawPlugin(plugin); else drawInfo(plugin);
    }
    dirty = new Set();
  }

  async function reloadAlerts() {
    try { alerts = hbd.withHeld((await hbd.getJSON(`${api}/alerts`)).alerts); dirty.add('alerts'); dirty.add('all'); } catch (e) { /* next time */ }
  }

  function onMessage(m) {
    if (m.type === 'heartbeat' && m.host.name === name) {
      // A live update carries a job's last run only: keep the runs loaded.
      const job = host && host.job;
      host = { ...m.host, latency_history: host ? host.latency_history : [] };
      if (job) host.job = job;
      if (typeof m.host.latency_ms === 'number' && host.latency_history) {
        host.latency_history = host.latency_history.concat([[m.host.last_seen, m.host.latency_ms]]).slice(-HISTORY);
      }
      dirty.add('host');
    } else if (m.type === 'plugin' && m.name === name) {
      latest[m.plugin] = { ...m.sample, kind: m.kind };
      if (m.kind === 'monitor') {
        const samples = (history.get(m.plugin) || []).concat([m.sample]).slice(-HISTORY);
        history.set(m.plugin, samples);
      }
      dirty.add(m.plugin);
      if (m.plugin === 'os_info') dirty.add('host');
    } else if (['host_down', 'host_up', 'host_unreachable'].includes(m.type) && m.name === name) {
      load();
    } else if (['job_start', 'job_ok', 'job_fail'].includes(m.type) && m.name === name) {
      load();
    } else if (m.type === 'host_forgotten' && m.name === name) {
      location.assign('/');
    } else if (['silence_added', 'silence_ended', 'maintenance_started', 'maintenance_ended'].includes(m.type)) {
      load();
    } else if ((m.type === 'acknowledged' || m.type === 'ack_removed') && (m.host || m.name) === name) {
      reloadAlerts();
    } else if (m.type === 'alert' && m.name === name) {
      reloadAlerts();
    }
  }

  document.getElementById('silence-this-host').addEventListener('click', () => hbd.silenceForm({ host: name }, () => { say('silenced'); load(); }));
  document.getElementById('forget').addEventListener('click', forget);
  hbd.live(load, onMessage);
  setInterval(() => { if (dirty.size) draw(); }, 250);
  setInterval(() => { dirty.add('host'); }, 1000);
})();
