// /alerts: the summary and every active alert, worst first, filterable by
// severity and host. Loaded over REST and refreshed when the WebSocket
// reports an alert change (and every 30 s, for the ages). The recent alert
// changes come from the events journal on load, then from the WebSocket.
// With an admin token, each alert can be acknowledged or silenced, and the
// silences (listed with the configured maintenance windows) ended.
'use strict';

(() => {
  const RANK = { CRITICAL: 3, WARNING: 2, UNKNOWN: 1, OK: 0 };
  const tbody = document.querySelector('#alerts tbody');
  const severity = document.getElementById('severity');
  const hostFilter = document.getElementById('host-filter');
  const FEED_LENGTH = 100;
  let alerts = [];
  let loading = null;

  function what(alert) {
    if (alert.plugin === 'heartbeat') return 'host down';
    return alert.metric_path === '' ? 'stopped reporting' : alert.metric_path;
  }

  // A held alert follows the host-down alert it is held under.
  const order = (a) => a.heldBy || a;

  function render() {
    const wanted = severity.value;
    const text = hostFilter.value.trim().toLowerCase();
    const shown = alerts
      .filter((a) => (!wanted || a.level === wanted) && (!text || a.hostname.includes(text)))
      .sort((a, b) => RANK[order(b).level] - RANK[order(a).level] || a.hostname.localeCompare(b.hostname)
        || Boolean(a.heldBy) - Boolean(b.heldBy) || a.plugin.localeCompare(b.plugin));
    const rows = shown.map((a) => {
      const row = hbd.el('tr', null, a.heldBy ? 'problem-held' : null);
      row.appendChild(hbd.el('td', a.heldBy ? `${a.level} (held)` : a.level, a.heldBy ? 'held' : `level-${a.level}`));
      const hostCell = hbd.el('td');
      const link = hbd.el('a', a.hostname);
      link.href = `/hosts/${encodeURIComponent(a.hostname)}`;
      hostCell.appendChild(link);
      row.appendChild(hostCell);
      row.appendChild(hbd.el('td', a.plugin));
      row.appendChild(hbd.el('td', what(a)));
      row.appendChild(hbd.el('td', a.last_value === null ? '–' : hbd.withUnit(a.last_value, hbd.unitOf(a.metric_path))));
      row.appendChild(hbd.el('td', a.threshold === null ? '–' : hbd.withUnit(a.threshold, hbd.unitOf(a.metric_path))));
      row.appendChild(hbd.el('td', hbd.ago(a.since)));
      // The message, then what operators did about it.
      const message = hbd.el('td', a.heldBy ? `held while ${a.hostname} is down: ${a.message}` : a.message, 'marked');
      message.append(...hbd.marks(a));
      row.appendChild(message);
      const actions = hbd.el('td', null, 'actions');
      if (a.acknowledged) {
        actions.appendChild(hbd.button('remove ack', async () => { say('alert-message', await hbd.unack(a.hostname, a) || 'acknowledgement removed'); load(); }));
      } else if (a.level !== 'OK') {
        actions.appendChild(hbd.button('Acknowledge…', () => hbd.ackForm(a.hostname, a, () => { say('alert-message', 'acknowledged'); load(); })));
      }
      const target = a.plugin === 'heartbeat' ? { host: a.hostname } : { host: a.hostname, plugin: a.plugin, metric_path: a.metric_path || '' };
      actions.appendChild(hbd.button('Silence…', () => hbd.silenceForm(target, () => { say('silence-message', 'silenced'); load(); })));
      row.appendChild(actions);
      return row;
    });
    tbody.replaceChildren(...rows);
    document.getElementById('none').hidden = shown.length > 0;
  }

  function say(id, text) {
    document.getElementById(id).textContent = text;
  }

  // Silences not yet ended and the maintenance windows (GET /api/0/silences).
  async function loadSilences() {
    const answer = await hbd.api.silences();
    const unavailable = document.getElementById('silences-unavailable');
    const box = document.getElementById('silences-box');
    if (!answer.ok) {
      unavailable.hidden = false;
      box.hidden = true;
      unavailable.textContent = answer.status === 404 ? 'silences are not available on this hbd'
        : `cannot load silences: ${answer.body.error || `hbd answered ${answer.status}`}`;
      return;
    }
    unavailable.hidden = true;
    box.hidden = false;
    const silences = Array.isArray(answer.body.silences) ? answer.body.silences : [];
    const when = (t) => (typeof t === 'number' ? hbd.dateTime(t) : '–');
    document.querySelector('#silences tbody').replaceChildren(...silences.map((x) => {
      const row = hbd.el('tr', null, x.active ? 'silence-active' : 'silence-future');
      row.appendChild(hbd.el('td', x.host));
      row.appendChild(hbd.el('td', x.plugin || 'any'));
      row.appendChild(hbd.el('td', x.metric_path || (x.plugin ? 'any' : '')));
      row.appendChild(hbd.el('td', `${when(x.starts_at)}${x.active ? '' : ' (not yet)'}`));
      row.appendChild(hbd.el('td', when(x.ends_at)));
      row.appendChild(hbd.el('td', x.comment, 'wrap'));
      row.appendChild(hbd.el('td', x.by));
      const end = hbd.el('td', null, 'actions');
      end.appendChild(hbd.button('end', async () => { say('silence-message', await hbd.endSilence(x.id) || 'silence ended'); load(); }));
      row.appendChild(end);
      return row;
    }));
    document.getElementById('no-silences').hidden = silences.length > 0;
    const windows = Array.isArray(answer.body.maintenance) ? answer.body.maintenance : [];
    document.getElementById('maintenance').replaceChildren(...windows.map((w) => {
      const what = [w.host, w.plugin, w.metric_path].filter(Boolean).join(' ');
      const span = `${when(w.starts_at)} to ${when(w.ends_at)}`;
      return hbd.el('li', `${w.name} (${what || 'every host'}): ${w.active ? `now, until ${when(w.ends_at)}` : `next ${span}`}`, w.active ? 'mark-silenced' : null);
    }));
    document.getElementById('no-maintenance').hidden = windows.length > 0;
  }

  const feed = hbd.feed(document.getElementById('feed'), FEED_LENGTH, (m) =>
    (m.type === 'alert' || m.type === 'alert_reminder' ? { text: m.text, className: `level-${m.level}` } : null));

  async function load() {
    // The recent changes come from the journal; failing that, the live ones still show.
    const recent = feed.load(`limit=${FEED_LENGTH}&type=alert,alert_reminder`).catch(() => {});
    const silences = loadSilences();
    try {
      const body = await hbd.getJSON('/api/0/alerts');
      alerts = hbd.withHeld(body.alerts);
      for (const level of ['critical', 'warning', 'unknown', 'ok']) {
        document.getElementById(`n-${level}`).textContent = body.summary[level];
      }
      render();
    } catch (e) {
      document.getElementById('none').textContent = `Cannot load alerts: ${e.message}`;
    }
    await recent;
    await silences;
  }

  // Many changes at once (a switch dies) cost one reload, not one each.
  function reload() {
    if (loading) return;
    loading = setTimeout(() => { loading = null; load(); }, 250);
  }

  document.getElementById('new-silence').addEventListener('click', () => hbd.silenceForm({ host: hostFilter.value.trim() }, () => { say('silence-message', 'silenced'); load(); }));
  severity.addEventListener('change', render);
  hostFilter.addEventListener('input', render);
  hbd.live(load, (m) => {
    if (m.type === 'alert' || m.type === 'alert_reminder') {
      feed.add(m);
      if (m.type === 'alert') reload();
    } else if (['silence_added', 'silence_ended', 'maintenance_started', 'maintenance_ended', 'acknowledged', 'ack_removed', 'host_forgotten'].includes(m.type)) {
      reload();
    }
  });
  setInterval(load, 30000);
})();
