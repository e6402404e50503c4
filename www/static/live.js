// /live: every host, kept current by the WebSocket; ages tick every second.
'use strict';

(() => {
  const hosts = new Map();
  const rows = new Map();
  const tbody = document.querySelector('#hosts tbody');
  const feed = document.getElementById('feed');
  const FEED_LENGTH = 100;

  function cells(row) {
    while (row.cells.length < 8) row.appendChild(document.createElement('td'));
    return row.cells;
  }

  function render(host, flash) {
    let row = rows.get(host.name);
    if (!row) {
      row = document.createElement('tr');
      row.dataset.host = host.name;
      rows.set(host.name, row);
      const after = [...rows.keys()].sort().find((name) => name > host.name);
      tbody.insertBefore(row, after ? rows.get(after) : null);
    }
    const c = cells(row);
    c[0].textContent = host.name;
    c[1].textContent = host.status;
    c[1].className = `status-${host.status === 'up' ? 'up' : 'down'}`;
    c[2].textContent = host.alert_level || 'OK';
    c[2].className = `level-${host.alert_level || 'OK'}`;
    c[4].textContent = host.latency_ms === null || host.latency_ms === undefined ? '–' : `${hbd.number(host.latency_ms)} ms`;
    c[5].textContent = host.address;
    c[7].textContent = host.count;
    tickRow(host, c);
    if (flash) {
      row.classList.remove('flash');
      void row.offsetWidth;
      row.classList.add('flash');
    }
  }

  function tickRow(host, c) {
    c[3].textContent = hbd.ago(host.last_seen);
    c[6].textContent = host.status === 'up' ? hbd.duration(Date.now() / 1000 - host.status_since) : '–';
  }

  function tick() {
    for (const [name, host] of hosts) {
      const row = rows.get(name);
      if (row) tickRow(host, cells(row));
    }
    const up = [...hosts.values()].filter((h) => h.status === 'up').length;
    document.getElementById('summary').textContent = hosts.size ? `${up} up, ${hosts.size - up} down` : '';
    document.getElementById('empty').hidden = hosts.size > 0;
  }

  function note(at, text) {
    const item = hbd.el('li');
    item.appendChild(hbd.el('time', hbd.clock(at)));
    item.appendChild(document.createTextNode(text));
    feed.prepend(item);
    while (feed.children.length > FEED_LENGTH) feed.lastChild.remove();
  }

  function setStatus(name, status, at) {
    const host = hosts.get(name);
    if (!host) return;
    host.status = status;
    host.status_since = at;
    render(host, true);
  }

  hbd.connect((m) => {
    switch (m.type) {
      case 'snapshot':
        hosts.clear();
        rows.clear();
        tbody.replaceChildren();
        for (const host of m.hosts) { hosts.set(host.name, host); render(host, false); }
        break;
      case 'heartbeat':
        hosts.set(m.host.name, m.host);
        render(m.host, true);
        note(m.host.last_seen, `heartbeat from ${m.host.name} (${m.host.address})`);
        break;
      case 'host_new': note(m.at, `new host ${m.name} at ${m.address}`); break;
      case 'host_up': setStatus(m.name, 'up', m.at); note(m.at, `${m.name} is up after ${hbd.duration(m.down_for)} down`); break;
      case 'host_down': setStatus(m.name, 'down', m.at); note(m.at, `${m.name} is down, silent for ${hbd.duration(m.silent_for)}`); break;
      case 'address_changed': note(m.at, `${m.name} moved from ${m.old_address} to ${m.address}`); break;
      case 'alert': {
        const host = hosts.get(m.name);
        note(m.at, m.message);
        if (host) {
          // The host's next heartbeat brings its worst level; show this one now.
          if (m.level !== 'OK' && (!host.alert_level || host.alert_level === 'OK')) host.alert_level = m.level;
          render(host, true);
        }
        break;
      }
      case 'dns_update': note(m.at, m.outcome === 'updated' ? `${m.name}.${m.domain} ${m.record} set to ${m.address}` : `${m.name}.${m.domain} ${m.record} not set: ${m.error}`); break;
      case 'plugin':
        note(m.sample.received, `${m.name}: ${m.plugin} ${m.sample.error ? `error: ${m.sample.error}` : 'reported'}`);
        break;
      default: break;
    }
    tick();
  });
  setInterval(tick, 1000);
})();
