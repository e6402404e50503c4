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

  // A host's tags as marks, each a link to the overview filtered by it
  // (text only: a tag is a-z 0-9 _ - . anyway).
  function tagMarks(host) {
    return (Array.isArray(host && host.tags) ? host.tags : []).map((tag) =>
      link(String(tag), `/?tag=${encodeURIComponent(String(tag))}`, 'mark mark-tag'));
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

  // The API token a person pasted into the page (localStorage
  // `hbd_token`): sent as `Authorization: Bearer` on every request and as
  // the WebSocket's subprotocol `bearer.TOKEN`. There are no cookies, so
  // no other site's page can send it.
  const TOKEN_KEY = 'hbd_token';
  function token() {
    try { return localStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
  }
  function setToken(value) {
    try {
      if (value) localStorage.setItem(TOKEN_KEY, value); else localStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage refused: the token lasts as long as the page */ }
  }

  // The one way the pages talk to the API: `{ok, status, body}`, never an
  // exception (no answer at all is status 0 with an error in the body).
  async function request(method, path, body) {
    const headers = {};
    const secret = token();
    if (secret) headers.Authorization = `Bearer ${secret}`;
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try { response = await fetch(path, init); } catch (e) {
      return { ok: false, status: 0, body: { error: `hbd did not answer (${e.message})` } };
    }
    let parsed = null;
    try { parsed = await response.json(); } catch (e) { parsed = null; }
    return { ok: response.ok, status: response.status, body: parsed && typeof parsed === 'object' ? parsed : {} };
  }

  // Why a read was refused (401), in the words a person acts on.
  const needsTokenText = () => (token()
    ? 'hbd does not take the token this page has; paste another above, or sign out'
    : 'this hbd needs a token to read; paste one above');

  function showNeedsToken(on) {
    const notice = document.getElementById('needs-token');
    if (!notice) return;
    notice.hidden = !on;
    if (on) notice.textContent = needsTokenText();
  }

  async function getJSON(path) {
    const answer = await request('GET', path);
    if (answer.status === 401) {
      showNeedsToken(true);
      throw new Error(needsTokenText());
    }
    if (!answer.ok) throw new Error(answer.body.error || `hbd answered ${answer.status}`);
    // /healthz is open: only an answer from the API says the token is taken.
    if (path.startsWith('/api/')) showNeedsToken(false);
    return answer.body;
  }

  // A refused write in words: `what` is what was asked ("forgetting a host").
  function writeError(answer, what) {
    if (answer.status === 401) {
      return token() ? `${what} was refused: ${answer.body.error || 'unknown token'}; paste an admin token above`
        : `${what} needs an admin token: paste one above`;
    }
    if (answer.status === 403) return `${what} was refused: ${answer.body.error || 'forbidden'}`;
    return answer.body.error || `hbd answered ${answer.status}`;
  }

  // What an acknowledgement names of an alert: nothing for a host-down
  // alert, else its plugin and metric path.
  const alertTarget = (a) => (a.plugin === 'heartbeat' ? {} : { plugin: a.plugin, metric_path: a.metric_path });
  const hostPath = (name) => `/api/0/hosts/${encodeURIComponent(name)}`;

  // Every write the pages make, one function each (docs/API.md).
  const api = {
    forget: (name, dns) => request('DELETE', `${hostPath(name)}${dns ? '?dns=1' : ''}`),
    silences: () => request('GET', '/api/0/silences'),
    silence: (silence) => request('POST', '/api/0/silences', silence),
    endSilence: (id) => request('DELETE', `/api/0/silences/${encodeURIComponent(id)}`),
    ack: (host, target, comment) => request('POST', `${hostPath(host)}/ack`, { ...target, comment }),
    unack: (host, target) => request('DELETE', `${hostPath(host)}/ack`, target),
  };

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

  // The token as a subprotocol, if it is one: a protocol is an HTTP token
  // (RFC 6455), and a secret with other characters goes without (where
  // reads need a token, the page then polls).
  function wsProtocols() {
    const secret = token();
    return secret && /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(secret) ? [`bearer.${secret}`] : [];
  }

  // Loads the page's data with `load`, then keeps it current over a
  // WebSocket, `onMessage` taking each update. The WebSocket is tried on the
  // page's own host and port first (/ws, which passes a reverse proxy), then
  // on ws_port; while neither answers, `load` runs every 10 s. Reconnects
  // with backoff (1 s doubling to 15 s); each connection starts with a
  // snapshot, and the page loads afresh. `wsQuery`, if given, is asked
  // before each connection for the query to open it with (the overview's
  // `?snapshot=none` once it shows a page at a time), and the first
  // connection then waits for the first load, which tells what to ask.
  function live(load, onMessage, wsQuery) {
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
      const url = `${urls[attempt % urls.length]}${wsQuery ? wsQuery() : ''}`;
      let opened = false;
      let socket;
      try { socket = new WebSocket(url, wsProtocols()); } catch (e) { attempt += 1; setTimeout(open, delay); return; }
      socket.onopen = () => { opened = true; everLive = true; delay = 1000; poll(false); setConnection('live'); };
      socket.onmessage = (event) => {
        let message;
        try { message = JSON.parse(event.data); } catch (e) { return; }
        // A burst (a mass outage) comes as one batch: its updates in order.
        for (const m of message.type === 'batch' && Array.isArray(message.updates) ? message.updates : [message]) {
          if (m.type === 'snapshot') reload(m);
          else if (loading) queued.push(m);
          else onMessage(m);
        }
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
    if (wsQuery) loading.then(() => open(), () => open()); else open();
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

  // The states an operator put a host or an alert in, or its parents did,
  // each with its own label and mark (not colour alone): silenced (until
  // when, why, by whom), acknowledged (by whom, when, why), unreachable
  // (behind which down parents), and how many hosts stand behind a down
  // one. `compact`: the label only, the rest in its tooltip.
  function marks(item, compact) {
    const out = [];
    const mark = (kind, label, details) => {
      const full = details ? `${label} ${details}` : label;
      const node = el('span', compact ? label : full, `mark mark-${kind}`);
      node.title = full;
      out.push(node);
    };
    const s = item && item.silenced;
    if (s && typeof s === 'object') {
      const until = typeof s.until === 'number' ? `until ${dateTime(s.until)}` : '';
      mark('silenced', 'silenced', `${until}: ${s.comment || ''}${s.by ? ` (by ${s.by})` : ''}`);
    }
    const a = item && item.acknowledged;
    if (a && typeof a === 'object') {
      const at = typeof a.at === 'number' ? ` ${ago(a.at)}` : '';
      mark('acknowledged', 'acknowledged', `by ${a.by || '?'}${at}: ${a.comment || ''}`);
    }
    if (item && item.status === 'unreachable') {
      const via = Array.isArray(item.unreachable_via) ? item.unreachable_via.join(', ') : '';
      mark('unreachable', 'unreachable', via ? `behind ${via} (down)` : 'behind a down parent');
    }
    if (item && item.peer === true) {
      mark('peer', 'hbd peer', 'another hbd that watches this one (its peers: name this hbd)');
    }
    if (item && item.kind === 'job') {
      const last = item.job && Array.isArray(item.job.runs) ? item.job.runs[item.job.runs.length - 1] : null;
      mark('job', 'job', last && typeof last.outcome === 'string' ? `last run: ${last.outcome}` : '(hbc run)');
    }
    if (item && typeof item.behind === 'number' && item.behind > 0) {
      mark('behind', `${item.behind} host${item.behind === 1 ? '' : 's'} unreachable behind it`, '');
    }
    return out;
  }

  // A host's status as a word: up, down or unreachable.
  const statusOf = (h) => (h.status === 'up' || h.status === 'unreachable' ? h.status : 'down');

  function button(text, onClick, className) {
    const b = el('button', text, className || 'action');
    b.type = 'button';
    b.addEventListener('click', onClick);
    return b;
  }

  // A modal form: `fields` (a function filling the form) and `submit`,
  // which returns an error text to show or nothing when it is done.
  function dialog(id, title, fields, submitText, submit) {
    document.getElementById(id)?.remove();
    const box = el('dialog', null, 'form-dialog');
    box.id = id;
    const form = el('form');
    form.id = `${id}-form`;
    form.noValidate = true;
    form.appendChild(el('h2', title));
    fields(form);
    const error = el('p', null, 'error');
    error.id = `${id}-error`;
    error.setAttribute('role', 'alert');
    error.hidden = true;
    form.appendChild(error);
    const buttons = el('p', null, 'buttons');
    const go = el('button', submitText);
    go.type = 'submit';
    buttons.append(go, button('cancel', () => box.close(), 'secondary'));
    form.appendChild(buttons);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      go.disabled = true;
      error.hidden = true;
      const problem = await submit();
      go.disabled = false;
      if (problem) { error.textContent = problem; error.hidden = false; } else box.close();
    });
    box.addEventListener('close', () => box.remove());
    box.appendChild(form);
    document.body.appendChild(box);
    box.showModal();
    return box;
  }

  function field(form, label, input) {
    const row = el('label', label, 'field');
    row.appendChild(input);
    form.appendChild(row);
    return input;
  }

  function input(id, value, type) {
    const node = el(type === 'textarea' ? 'textarea' : 'input');
    node.id = id;
    if (type !== 'textarea') node.type = type || 'text';
    node.value = value || '';
    node.autocomplete = 'off';
    return node;
  }

  const DURATION = /^(\d+|(\d+[smhd])+)$/;

  // The silence form, prefilled from `what` ({host, plugin, metric_path});
  // `done(silence)` after hbd took it.
  function silenceForm(what, done) {
    const els = {};
    dialog('silence', 'Silence', (form) => {
      els.host = field(form, 'Host (name or pattern)', input('silence-host', what.host));
      els.plugin = field(form, 'Plugin (optional)', input('silence-plugin', what.plugin));
      els.metric = field(form, 'Metric path (optional)', input('silence-metric', what.metric_path));
      const choice = el('select');
      choice.id = 'silence-duration';
      for (const [value, text] of [['1h', '1 hour'], ['2h', '2 hours'], ['1d', '1 day'], ['custom', 'custom…']]) {
        const option = el('option', text);
        option.value = value;
        choice.appendChild(option);
      }
      els.duration = field(form, 'For', choice);
      els.custom = field(form, 'Custom duration (90m, 1h30m, 3d)', input('silence-custom', ''));
      els.custom.parentElement.hidden = true;
      choice.addEventListener('change', () => { els.custom.parentElement.hidden = choice.value !== 'custom'; });
      els.comment = field(form, 'Comment (why)', input('silence-comment', '', 'textarea'));
    }, 'silence', async () => {
      const host = els.host.value.trim();
      const plugin = els.plugin.value.trim();
      const metric = els.metric.value.trim();
      const comment = els.comment.value.trim();
      const duration = els.duration.value === 'custom' ? els.custom.value.trim() : els.duration.value;
      if (!host) return 'a host (name or pattern) is required';
      if (metric && !plugin) return 'a metric path needs its plugin';
      if (!DURATION.test(duration)) return 'a duration is a number of seconds or like 90m, 2h, 1d, 1h30m';
      if (!comment) return 'a comment is required: say why';
      const silence = { host, duration, comment };
      if (plugin) silence.plugin = plugin;
      if (metric) silence.metric_path = metric;
      const answer = await api.silence(silence);
      if (answer.status === 404) {
        return `silences are not available on this hbd (${answer.body.error || '404'})`;
      }
      if (!answer.ok) return writeError(answer, 'silencing');
      done(answer.body);
      return null;
    });
  }

  // The acknowledgement form for one alert of `host`.
  function ackForm(host, alert, done) {
    let comment;
    dialog('ack', `Acknowledge: ${host} ${subject(alert)}`, (form) => {
      comment = field(form, 'Comment (who is on it, what is done)', input('ack-comment', '', 'textarea'));
    }, 'acknowledge', async () => {
      const text = comment.value.trim();
      if (!text) return 'a comment is required: say who is on it';
      const answer = await api.ack(host, alertTarget(alert), text);
      if (answer.status === 404 && (answer.body.error || '').startsWith('no such path')) {
        return `acknowledgements are not available on this hbd (${answer.body.error})`;
      }
      if (answer.status === 409) return `${host} ${subject(alert)} is OK again: nothing to acknowledge`;
      if (!answer.ok) return writeError(answer, 'acknowledging');
      done(answer.body);
      return null;
    });
  }

  // Removes an acknowledgement; an error text, or null when done.
  async function unack(host, alert) {
    const answer = await api.unack(host, alertTarget(alert));
    return answer.ok ? null : writeError(answer, 'removing the acknowledgement');
  }

  // Ends a silence; an error text, or null when done.
  async function endSilence(id) {
    const answer = await api.endSilence(id);
    if (answer.status === 404) return `no silence ${id} (ended already?)`;
    return answer.ok ? null : writeError(answer, 'ending the silence');
  }

  // The token control in the header, and the notice a refused read shows.
  function tokenControl() {
    const header = document.querySelector('header');
    if (!header) return;
    const box = el('div', null, 'token');
    box.id = 'token';
    if (token()) {
      box.appendChild(el('span', 'token set', 'token-set'));
      const out = button('sign out', () => { setToken(''); location.reload(); }, 'secondary');
      out.id = 'sign-out';
      box.appendChild(out);
    } else {
      const form = el('form');
      form.id = 'token-form';
      const secret = input('token-input', '', 'password');
      secret.placeholder = 'API token';
      secret.setAttribute('aria-label', 'API token');
      const use = el('button', 'use token');
      use.type = 'submit';
      form.append(secret, use);
      form.addEventListener('submit', (event) => {
        event.preventDefault();
        const value = secret.value.trim();
        if (!value) return;
        setToken(value);
        location.reload();
      });
      box.appendChild(form);
    }
    header.appendChild(box);
    const notice = el('p', null, 'notice needs-token');
    notice.id = 'needs-token';
    notice.setAttribute('role', 'alert');
    notice.hidden = true;
    document.querySelector('main')?.prepend(notice);
  }
  tokenControl();

  return { el, link, duration, ago, clock, dateTime, number, bytes, unitOf, withUnit, getJSON, flatten, withHeld, subject, live, feed, chart, now,
    token, request, api, writeError, marks, tagMarks, statusOf, button, dialog, field, input, silenceForm, ackForm, unack, endSilence };
})();
