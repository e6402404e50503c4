// /alerts: the summary and every active alert, worst first, filterable by
// severity and host. Loaded over REST and refreshed when the WebSocket
// reports an alert change (and every 30 s, for the ages).
'use strict';

(() => {
  const RANK = { CRITICAL: 3, WARNING: 2, UNKNOWN: 1, OK: 0 };
  const tbody = document.querySelector('#alerts tbody');
  const feed = document.getElementById('feed');
  const severity = document.getElementById('severity');
  const hostFilter = document.getElementById('host-filter');
  const FEED_LENGTH = 100;
  let alerts = [];
  let loading = null;

  function what(alert) {
    if (alert.plugin === 'heartbeat') return 'host down';
    return alert.metric_path === '' ? 'stopped reporting' : alert.metric_path;
  }

  function render() {
    const wanted = severity.value;
    const text = hostFilter.value.trim().toLowerCase();
    const shown = alerts
      .filter((a) => (!wanted || a.level === wanted) && (!text || a.hostname.includes(text)))
      .sort((a, b) => RANK[b.level] - RANK[a.level] || a.hostname.localeCompare(b.hostname) || a.plugin.localeCompare(b.plugin));
    const rows = shown.map((a) => {
      const row = hbd.el('tr');
      row.appendChild(hbd.el('td', a.level, `level-${a.level}`));
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
      row.appendChild(hbd.el('td', a.message));
      return row;
    });
    tbody.replaceChildren(...rows);
    document.getElementById('none').hidden = shown.length > 0;
  }

  async function load() {
    try {
      const body = await hbd.getJSON('/api/0/alerts');
      alerts = body.alerts;
      for (const level of ['critical', 'warning', 'unknown', 'ok']) {
        document.getElementById(`n-${level}`).textContent = body.summary[level];
      }
      render();
    } catch (e) {
      document.getElementById('none').textContent = `Cannot load alerts: ${e.message}`;
    }
  }

  // Many changes at once (a switch dies) cost one reload, not one each.
  function reload() {
    if (loading) return;
    loading = setTimeout(() => { loading = null; load(); }, 250);
  }

  function note(at, text, level) {
    const item = hbd.el('li');
    item.appendChild(hbd.el('time', hbd.clock(at)));
    item.appendChild(hbd.el('span', text, `level-${level}`));
    feed.prepend(item);
    while (feed.children.length > FEED_LENGTH) feed.lastChild.remove();
  }

  severity.addEventListener('change', render);
  hostFilter.addEventListener('input', render);
  hbd.live(load, (m) => {
    if (m.type === 'alert' || m.type === 'alert_reminder') {
      note(m.at, m.text, m.level);
      if (m.type === 'alert') reload();
    }
  });
  setInterval(load, 30000);
})();
