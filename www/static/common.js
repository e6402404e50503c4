// Shared by the pages: element building (text only, never HTML: everything
// shown comes from clients and may be hostile), formatting with units, the
// API, charts, and the live connection: REST first, then a WebSocket on the
// page's own port (/ws) or, failing that, on ws_port; while neither is
// open the page polls the API and says it is not live.
'use strict';

const hbd = (() => {
  const wsPort = document.querySelector('meta[name="hbd-ws-port"]').content;
  const POLL_EVERY = 10000;

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function link(text, href, className) {
    const a = el('a', text, className);
    a.href = href;
    return a;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return '–';
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  }

  const now = () => Date.now() / 1000;
  const ago = (ts) => (ts ? `${duration(now() - ts)} ago` : '–');
  const clock = (ts) => new Date(ts * 1000).toLocaleTimeString();
  const dateTime = (ts) => new Date(ts * 1000).toLocaleString();

  function number(value) {
    if (typeof value !== 'number') return String(value);
    return Number.isInteger(value) ? String(value) : value.toFixed(Math.abs(value) < 10 ? 2 : 1);
  }

  function bytes(value, suffix) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = value;
    let i = 0;
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return `${number(i ? Math.round(v * 10) / 10 : v)} ${units[i]}${suffix}`;
  }

  // The unit of a metric of hbc's built-in plugins, from its name.
  function unitOf(path) {
    const name = path.split('.').pop();
    if (name === 'percent' || name.endsWith('_percent')) return '%';
    if (name.endsWith('_mb')) return 'MiB';
    if (name.endsWith('_gb')) return 'GiB';
    if (name.endsWith('bytes_per_s')) return 'bytes/s';
    if (name.endsWith('_per_s')) return '/s';
    if (name.endsWith('_ms') || name === 'latency') return 'ms';
    if (name.endsWith('_mhz')) return 'MHz';
    return '';
  }

  // A value with its unit, as a person reads it.
  function withUnit(value, unit) {
    if (typeof value !== 'number') return typeof value === 'string' ? value : JSON.stringify(value);
    if (unit === 'bytes/s') return bytes(value, '/s');
    if (unit === 'B') return bytes(value, '');
    // Sizes in MiB and GiB read better in the largest fitting unit.
    if (unit === 'MiB') return bytes(value * 1048576, '');
    if (unit === 'GiB') return bytes(value * 1073741824, '');
    if (unit === '%') return `${number(value)} %`;
    return unit ? `${number(value)} ${unit}` : number(value);
  }

  async function getJSON(path) {
    const response = await fetch(path, { cache: 'no-store' });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || `${response.status}`);
    return body;
  }

  function flatten(value, path, out, depth) {
    if (value !== null && typeof value === 'object' && depth < 8) {
      for (const [key, child] of Object.entries(value)) flatten(child, path ? `${path}.${key}` : key, out, depth + 1);
    } else if (path) {
      out.set(path, value);
    }
    return out;
  }

  function setConnection(state) {
    const badge = document.getElementById('connection');
    const text = { live: 'live', reconnecting: 'reconnecting…', polling: 'not live: refreshing every 10 s' }[state];
    badge.textContent = text;
    badge.className = `badge ${state === 'live' ? 'online' : 'offline'}`;
  }

  // Loads the page's data with `load`, then keeps it current over a
  // WebSocket, `onMessage` taking each update. The WebSocket is tried on the
  // page's own host and port first (/ws, which passes a reverse proxy), then
  // on ws_port; while neither answers, `load` runs every 10 s. Reconnects
  // with backoff (1 s doubling to 15 s); each connection starts with a
  // snapshot, and the page loads afresh.
  function live(load, onMessage) {
    let delay = 1000;
    let poller = null;
    let attempt = 0;
    let everLive = false;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const urls = [`${scheme}://${location.host}/ws`, `${scheme}://${location.hostname}:${wsPort}/`];
    function poll(on) {
      if (on && !poller) {
        // A page that was live says it is reconnecting; one that never got
        // a WebSocket says plainly that it is not live.
        setConnection(everLive ? 'reconnecting' : 'polling');
        poller = setInterval(load, POLL_EVERY);
      }
      if (!on && poller) { clearInterval(poller); poller = null; }
    }
    function open() {
      const url = urls[attempt % urls.length];
      let opened = false;
      let socket;
      try { socket = new WebSocket(url); } catch (e) { attempt += 1; setTimeout(open, delay); return; }
      socket.onopen = () => { opened = true; everLive = true; delay = 1000; poll(false); setConnection('live'); };
      socket.onmessage = (event) => {
        let message;
        try { message = JSON.parse(event.data); } catch (e) { return; }
        if (message.type === 'snapshot') reload(message);
        else if (loading) queued.push(message);
        else onMessage(message);
      };
      socket.onclose = () => {
        if (!opened) attempt += 1;
        // Both ways refused: say so, and keep the data fresh by polling.
        if (!opened && attempt % urls.length === 0) poll(true);
        else if (opened) setConnection('reconnecting');
        setTimeout(open, opened ? 1000 : delay);
        if (!opened && attempt % urls.length === 0) delay = Math.min(delay * 2, 15000);
      };
      socket.onerror = () => socket.close();
    }
    // A page's load replaces what it shows, so messages that arrive while
    // it runs (the snapshot that started it among them) are applied after
    // it: applied before, they would be lost to a list fetched earlier
    // (the hosts list may be up to a second old). A snapshot during a load
    // loads again once that one ends.
    let loading = null;
    let again = false;
    let queued = [];
    function reload(message) {
      if (message) queued.push(message);
      if (loading) { again = true; return; }
      again = false;
      loading = Promise.resolve(load()).finally(() => {
        loading = null;
        if (again) { reload(); return; }
        const messages = queued;
        queued = [];
        messages.forEach(onMessage);
      });
    }
    reload();
    open();
  }

  // A feed of events in `list`, newest first, at most `length` of them:
  // filled from the events journal by `load(query)` (/api/0/events?query)
  // and by live updates with `add`. Each event is shown once, however often
  // it comes (a page's load and the WebSocket overlap at the seam), and in
  // the order of its time. `describe(event)` gives {text, className} or
  // null to leave it out. Journal lines have `timestamp` where live
  // updates have `at`; their other fields are the same.
  function feed(list, length, describe) {
    const shown = new Set();
    const timeOf = (event) => (event.at !== undefined ? event.at : event.timestamp);
    function key(event) {
      const fields = Object.keys(event).filter((k) => k !== 'at' && k !== 'timestamp' && k !== 'datetime').sort();
      return JSON.stringify([timeOf(event), fields.map((k) => [k, event[k]])]);
    }
    function add(event) {
      const at = timeOf(event);
      const id = key(event);
      if (typeof at !== 'number' || shown.has(id)) return;
      const what = describe(event);
      if (!what) return;
      const item = el('li');
      item.dataset.key = id;
      item.dataset.at = String(at);
      item.appendChild(el('time', clock(at)));
      item.appendChild(el('span', what.text, what.className));
      // Before the first that is not newer: of events at the same time, the
      // one added later (the journal gives them oldest first) is the newer.
      let before = null;
      for (const child of list.children) {
        if (Number(child.dataset.at) <= at) { before = child; break; }
      }
      list.insertBefore(item, before);
      shown.add(id);
      while (list.children.length > length) {
        shown.delete(list.lastChild.dataset.key);
        list.lastChild.remove();
      }
    }
    async function load(query) {
      const body = await getJSON(`/api/0/events?${query}`);
      for (const event of body.events) add(event);
    }
    return { add, load };
  }

  const svgNS = 'http://www.w3.org/2000/svg';
  function svg(tag, attributes) {
    const node = document.createElementNS(svgNS, tag);
    for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
    return node;
  }

  // A line chart with a time axis, the unit, and thresholds drawn as
  // dashed lines ({value, level}); `points` are [unix time, value].
  function chart(title, points, unit, thresholds) {
    const box = el('figure', null, 'chart');
    box.appendChild(el('figcaption', unit ? `${title} (${unit})` : title));
    const xs = points.map((p) => p[0]);
    const ys = points.map((p) => p[1]).concat((thresholds || []).map((t) => t.value));
    const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
    let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    if (y0 === y1) { y0 -= 1; y1 += 1; }
    const [W, H, L, B] = [300, 110, 44, 18];
    const px = (x) => L + (x1 > x0 ? ((x - x0) / (x1 - x0)) * (W - L - 4) : (W - L) / 2);
    const py = (y) => 4 + (1 - (y - y0) / (y1 - y0)) * (H - B - 8);
    const graph = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `${title}: ${points.length} samples` });
    graph.appendChild(svg('line', { x1: L, y1: H - B, x2: W - 2, y2: H - B, class: 'axis' }));
    graph.appendChild(svg('line', { x1: L, y1: 2, x2: L, y2: H - B, class: 'axis' }));
    const label = (x, y, text, anchor) => {
      const t = svg('text', { x, y, 'text-anchor': anchor, class: 'tick' });
      t.textContent = text;
      graph.appendChild(t);
    };
    label(L - 3, py(y1) + 4, withUnit(y1, unit), 'end');
    label(L - 3, py(y0) + 2, withUnit(y0, unit), 'end');
    const time = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    label(L, H - 4, time(x0), 'start');
    label((L + W) / 2, H - 4, time((x0 + x1) / 2), 'middle');
    label(W - 2, H - 4, time(x1), 'end');
    for (const t of thresholds || []) {
      graph.appendChild(svg('line', { x1: L, x2: W - 2, y1: py(t.value), y2: py(t.value), class: `threshold threshold-${t.level}` }));
    }
    graph.appendChild(svg('polyline', { points: points.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ') }));
    box.appendChild(graph);
    const last = points[points.length - 1];
    box.appendChild(el('div', `now ${withUnit(last[1], unit)}`, 'range'));
    return box;
  }

  // /api/0/alerts nests a down host's own alerts in its host-down alert's
  // `held`; pages that list every alert take them out, each marked with the
  // alert it is held under (`heldBy`).
  const withHeld = (alerts) => alerts.flatMap((a) => [a, ...(a.held || []).map((h) => ({ ...h, heldBy: a }))]);

  // What an alert is about, in words.
  function subject(a) {
    if (a.plugin === 'heartbeat') return 'host down';
    return `${a.plugin}${a.metric_path ? `.${a.metric_path}` : ' stopped reporting'}`;
  }

  return { el, link, duration, ago, clock, dateTime, number, bytes, unitOf, withUnit, getJSON, flatten, withHeld, subject, live, feed, chart, now };
})();
