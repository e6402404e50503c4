// /plugins: pick a host and a plugin; its latest values and a chart of each
// numeric value's history, extended live as samples arrive.
'use strict';

(() => {
  const HISTORY = 50;
  const MAX_CHARTS = 48;
  const hostSelect = document.getElementById('host');
  const pluginSelect = document.getElementById('plugin');
  let hosts = [];
  let samples = [];
  let shownKey = '';

  function fill(select, names, wanted) {
    select.replaceChildren(...names.map((name) => { const o = hbd.el('option', name); o.value = name; return o; }));
    if (names.includes(wanted)) select.value = wanted;
  }

  function remember() {
    const params = new URLSearchParams({ host: hostSelect.value, plugin: pluginSelect.value });
    history.replaceState(null, '', `?${params}`);
  }

  async function loadHosts() {
    const wanted = new URLSearchParams(location.search);
    const none = document.getElementById('none');
    none.dataset.text = none.dataset.text || none.textContent;
    try {
      hosts = (await hbd.getJSON('/api/0/hosts')).hosts.filter((h) => Object.keys(h.plugins).length);
    } catch (e) {
      none.textContent = `Cannot load hosts: ${e.message}`;
      none.hidden = false;
      return;
    }
    none.textContent = none.dataset.text;
    none.hidden = hosts.length > 0;
    fill(hostSelect, hosts.map((h) => h.name), hostSelect.value || wanted.get('host'));
    hostChanged(pluginSelect.value || wanted.get('plugin'));
  }

  function hostChanged(wantedPlugin) {
    const host = hosts.find((h) => h.name === hostSelect.value);
    const level = (host && host.alert_level) || 'OK';
    const badge = document.getElementById('alert-level');
    badge.textContent = level;
    badge.className = `level-${level}`;
    // Silenced or unreachable (a plugins.html from templates_dir may have no place for it).
    document.getElementById('host-marks')?.replaceChildren(...hbd.marks(host || {}, true));
    fill(pluginSelect, host ? Object.keys(host.plugins) : [], wantedPlugin);
    loadHistory();
  }

  async function loadHistory() {
    remember();
    if (!hostSelect.value || !pluginSelect.value) { samples = []; render(); return; }
    // Another host or plugin: what is shown now is not its history.
    const key = `${hostSelect.value}\n${pluginSelect.value}`;
    if (key !== shownKey) { samples = []; shownKey = key; }
    const path = `/api/0/hosts/${encodeURIComponent(hostSelect.value)}/plugins/${encodeURIComponent(pluginSelect.value)}?limit=${HISTORY}`;
    let fetched = [];
    try {
      fetched = (await hbd.getJSON(path)).samples;
    } catch (e) { /* shown as no data */ }
    // Samples that came live while the history was on its way are newer
    // than what it holds: keep them after it.
    const newest = fetched.length ? fetched[fetched.length - 1].received : -Infinity;
    samples = fetched.concat(samples.filter((s) => s.received > newest)).slice(-HISTORY);
    render();
  }

  function render() {
    const latest = samples[samples.length - 1];
    const error = document.getElementById('error');
    error.hidden = !(latest && latest.error);
    error.textContent = latest && latest.error ? `error: ${latest.error}` : '';
    document.getElementById('updated').textContent = latest ? `sampled ${hbd.clock(latest.at)}` : '';
    const values = latest && latest.data ? hbd.flatten(latest.data, '', new Map(), 0) : new Map();
    const tbody = document.querySelector('#values tbody');
    tbody.replaceChildren(...[...values].map(([path, value]) => {
      const row = hbd.el('tr');
      row.appendChild(hbd.el('td', path));
      row.appendChild(hbd.el('td', typeof value === 'number' ? hbd.withUnit(value, hbd.unitOf(path)) : JSON.stringify(value)));
      return row;
    }));
    const series = new Map();
    for (const sample of samples) {
      if (!sample.data) continue;
      for (const [path, value] of hbd.flatten(sample.data, '', new Map(), 0)) {
        if (typeof value !== 'number') continue;
        if (!series.has(path)) series.set(path, []);
        series.get(path).push([sample.at, value]);
      }
    }
    const charts = [...series].filter(([, points]) => points.length > 1).slice(0, MAX_CHARTS);
    document.getElementById('charts').replaceChildren(...charts.map(([path, points]) => hbd.chart(path, points, hbd.unitOf(path), [])));
  }

  hostSelect.addEventListener('change', () => hostChanged());
  pluginSelect.addEventListener('change', loadHistory);
  hbd.live(loadHosts, (m) => {
    if (m.type === 'plugin') {
      const known = hosts.find((h) => h.name === m.name);
      if (!known || !(m.plugin in known.plugins)) { loadHosts(); return; }
      if (m.name === hostSelect.value && m.plugin === pluginSelect.value) {
        samples.push(m.sample);
        if (samples.length > HISTORY) samples.shift();
        render();
      }
    }
  });
})();
