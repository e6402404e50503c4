// /alerts: the summary and every active alert, worst first, filterable by
// severity and host. Loaded over REST and refreshed when the WebSocket
// reports an alert change (and every 30 s, for the ages). The recent alert
// changes come from the events journal on load, then from the WebSocket.
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
      row.appendChild(hbd.el('td', a.heldBy ? `held while ${a.hostname} is down: ${a.message}` : a.message));
      return row;
    });
    tbody.replaceChildren(...rows);
    document.getElementById('none').hidden = shown.length > 0;
  }

  const feed = hbd.feed(document.getElementById('feed'), FEED_LENGTH, (m) =>
    (m.type === 'alert' || m.type === 'alert_reminder' ? { text: m.text, className: `level-${m.level}` } : null));

  async function load() {
    // The recent changes come from the journal; failing that, the live ones still show.
    const recent = feed.load(`limit=${FEED_LENGTH}&type=alert,alert_reminder`).catch(() => {});
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
  }

  // Many changes at once (a switch dies) cost one reload, not one each.
  function reload() {
    if (loading) return;
    loading = setTimeout(() => { loading = null; load(); }, 250);
  }

  severity.addEventListener('change', render);
  hostFilter.addEventListener('input', render);
  hbd.live(load, (m) => {
    if (m.type === 'alert' || m.type === 'alert_reminder') {
      feed.add(m);
      if (m.type === 'alert') reload();
    }
  });
  setInterval(load, 30000);
})();
