// The overview (/ and /live): a notice for each notification service hbd
// cannot deliver to, then problems (hosts down, then unreachable, then CRITICAL,
// WARNING and UNKNOWN alerts), then every host in a filterable list that
// renders only the rows in view. A heartbeat that changes no host's place
// only replaces its data; the list is sorted again only when a status, an
// alert level or the filter changes. The rows in view are drawn four times
// a second. The feed of recent events comes from the events journal on
// load, then from the WebSocket. Silenced, acknowledged and unreachable
// show as marks of their own beside what they are about. Tags show beside
// each host's name; the tag picker (or /?tag=TAG) lists only the hosts
// with that tag.
//
// Up to a page of hosts (1,000; /?page_size=N) the page holds them all
// (the plain /api/0/hosts, as ever) and filters, sorts and counts them
// itself. Beyond that (the whole list is ~30 MB at 100,000 hosts) it holds
// one page: the API's filters pick the hosts (problems first: one query
// per status and alert level, each in name order, followed by its
// cursor), `fields=` only what the list shows, and the tiles are the API's
// totals; live updates change the rows on the page, and a change of status
// or level fetches the page and counts again (at most once a second). Its
// WebSocket then opens with ?snapshot=none: the snapshot of every host
// would be parsed only to be dropped.
'use strict';

(() => {
  const ROW = 30;
  const FEED_LENGTH = 100;
  const query = new URLSearchParams(location.search);
  // Hosts on one page of the list: up to this many the page holds them all.
  const PAGE = Math.min(10000, Math.max(1, Number.parseInt(query.get('page_size'), 10) || 1000));
  // What the list and the problems show of a host (not its plugins, counters, parents).
  const FIELDS = 'fields=name,address,status,status_since,last_seen,latency_ms,alert_level,availability,silenced,tags,kind,job,unreachable_via,peer';
  // How often, at most, the tag tiles are counted afresh over every host
  // when paged: at 100,000 hosts that is ten pages of 10,000, each of
  // which hbd builds from its whole host table.
  const TAGS_EVERY = 60000;
  const RANK = { CRITICAL: 3, WARNING: 2, UNKNOWN: 1, OK: 0 };
  const hosts = new Map();
  let alerts = [];
  // /api/0/alerts' summary: the tiles count what it counts (a down host is
  // one critical alert; what is held under it does not count).
  let summary = { critical: 0, warning: 0, unknown: 0 };
  let list = [];
  // Each listed host's place in `list`, so a heartbeat finds its row at once.
  const positions = new Map();
  let statusFilter = '';
  let dirty = true;
  let alertsDue = null;
  const body = document.getElementById('hosts-body');
  const viewport = document.getElementById('hosts');
  const filter = document.getElementById('filter');
  // A live.html from templates_dir older than tags has no picker.
  const tagPicker = document.getElementById('tag-filter');
  let tagFilter = query.get('tag') || '';
  const pager = document.getElementById('pager');

  // A page at a time (more hosts than one page): what the API said.
  let paged = false;
  // Where each page shown so far began (`seg`: which query, `after`: its
  // cursor, `offset`: rows before it), the last one the page shown.
  let pageStarts = [{ seg: 0, after: null, offset: 0 }];
  let nextStart = null;
  // Hosts matching the filters, down or unreachable hosts (at most a page
  // of them) and how many there are, the tiles' counts, the tags' counts.
  let matching = 0;
  let problemHosts = [];
  let problemTotal = 0;
  let counts = { all: 0, down: 0, unreachable: 0, ok: 0, silenced: 0 };
  let tagCounts = new Map();
  let tagsCounted = 0;
  // Answers to requests older than the newest are dropped.
  let generation = 0;

  // Not up: down, or unreachable behind a down parent.
  const isDown = (h) => h.status !== 'up';
  const STATUS_RANK = { down: 2, unreachable: 1, up: 0 };
  const statusRank = (h) => STATUS_RANK[hbd.statusOf(h)];
  const level = (h) => h.alert_level || 'OK';
  const hostLink = (name) => hbd.link(name, `/hosts/${encodeURIComponent(name)}`);

  // Notification services hbd cannot deliver to (/healthz): a notice
  // naming each and what it lacks, hidden while every one is usable.
  async function loadNotify() {
    let services;
    try { services = (await hbd.getJSON('/healthz')).notify || {}; } catch (e) { return; }
    const items = Object.entries(services).filter(([, s]) => s && s.usable === false).map(([name, s]) => {
      const item = hbd.el('li');
      item.appendChild(hbd.el('b', name));
      item.appendChild(document.createTextNode(` is not usable, nothing is sent to it: ${s.problem}`));
      return item;
    });
    document.getElementById('notify-problems').replaceChildren(...items);
    document.getElementById('notify-notice').hidden = items.length === 0;
  }

  // What the feed shows of each event (alert reminders are left out).
  function describe(m) {
    switch (m.type) {
      case 'host_new': return { text: `new host ${m.name} at ${m.address}` };
      case 'host_up': return { text: `${m.name} is up after ${hbd.duration(m.down_for)} down` };
      case 'host_down': return { text: `${m.name} is down, silent for ${hbd.duration(m.silent_for)}` };
      case 'address_changed': return { text: `${m.name} moved from ${m.old_address} to ${m.address}` };
      case 'host_forgotten': return { text: `${m.name} forgotten (by ${m.by})` };
      case 'host_unreachable': return { text: `${m.name} is unreachable behind ${(m.via || []).join(', ')}` };
      case 'host_reachable': return { text: `${m.name} is reachable again after ${hbd.duration(m.unreachable_for)}` };
      case 'silence_added': { const x = m.silence || m; return { text: `silence for ${x.host}${x.plugin ? ` ${x.plugin}` : ''} by ${m.by}: ${x.comment}` }; }
      case 'silence_ended': { const x = m.silence || m; return { text: `silence for ${x.host} ended (${m.by})` }; }
      case 'maintenance_started': return { text: `maintenance ${m.name} started` };
      case 'maintenance_ended': return { text: `maintenance ${m.name} ended` };
      case 'acknowledged': return { text: `${m.host || m.name}${m.plugin ? ` ${m.plugin}` : ''} acknowledged by ${m.by}: ${m.comment}` };
      case 'ack_removed': return { text: `${m.host || m.name} acknowledgement removed by ${m.by}` };
      case 'alert': return { text: m.text };
      case 'dns_update': return { text: m.outcome === 'updated' ? `${m.name}.${m.domain} ${m.record} set to ${m.address}` : `${m.name}.${m.domain} ${m.record} not set: ${m.error}` };
      case 'notification': return { text: m.delivered ? `${m.service}: sent ${m.subject}` : `${m.service}: failed: ${m.error}` };
      case 'note': return { text: m.text };
      default: return null;
    }
  }
  const feed = hbd.feed(document.getElementById('feed'), FEED_LENGTH, describe);
  const FEED_QUERY = `limit=${FEED_LENGTH}&type=host_new,host_up,host_down,address_changed,alert,dns_update,notification,host_forgotten,host_unreachable,host_reachable,acknowledged,ack_removed,silence_added,silence_ended,maintenance_started,maintenance_ended`;

  const hostsQuery = (parts) => `/api/0/hosts?${parts.filter(Boolean).join('&')}`;
  const totalOf = (parts) => hbd.getJSON(hostsQuery([...parts, 'fields=name', 'limit=1'])).then((a) => a.total);

  // The list's queries in the order it shows them, problems first: down,
  // unreachable, then up by alert level (each in name order).
  const LEVELS = ['critical', 'warning', 'unknown', 'ok'];
  const IN_ORDER = ['status=down', 'status=unreachable', ...LEVELS.map((l) => `status=up&alert_level=${l}`)];
  const filtered = () => Boolean(statusFilter || filter.value.trim() || tagFilter);

  // The queries with the status buttons', the filter box's and the tag's conditions.
  function segments() {
    const chosen = {
      '': IN_ORDER,
      down: ['status=down'],
      unreachable: ['status=unreachable'],
      ok: ['status=up&alert_level=ok'],
      silenced: IN_ORDER.map((s) => `${s}&silenced=yes`),
    }[statusFilter] || ['down', 'unreachable', 'up'].map((s) => `status=${s}&alert_level=${statusFilter.toLowerCase()}`);
    const text = filter.value.trim().toLowerCase();
    const extra = [text ? `name=${encodeURIComponent(`*${text}*`)}` : '', tagFilter ? `tag=${encodeURIComponent(tagFilter)}` : ''];
    return chosen.map((s) => [s, ...extra]);
  }

  // One page of the list from `start`: each query from its cursor until
  // the page is full, skipping those that match nothing (`totals`: how
  // many each matches, asked here unless known).
  async function fetchPage(start, known) {
    const segs = segments();
    const totals = known || await Promise.all(segs.map(totalOf));
    const rows = [];
    let at = { seg: start.seg, after: start.after };
    while (at.seg < segs.length && rows.length < PAGE) {
      if (totals[at.seg] === 0) { at = { seg: at.seg + 1, after: null }; continue; }
      const page = [...segs[at.seg], FIELDS, `limit=${PAGE - rows.length}`, at.after ? `after=${encodeURIComponent(at.after)}` : ''];
      const answer = await hbd.getJSON(hostsQuery(page));
      rows.push(...answer.hosts);
      at = answer.next ? { seg: at.seg, after: answer.next } : { seg: at.seg + 1, after: null };
    }
    const more = at.after !== null || totals.slice(at.seg).some((t) => t > 0);
    return { rows, total: totals.reduce((a, b) => a + b, 0), next: more ? { ...at, offset: start.offset + rows.length } : null };
  }

  // The tag tiles' counts over every host, from their status and tags
  // only, a page of 10,000 at a time (at most every TAGS_EVERY ms, one
  // count at a time), drawn when done: the list and the other tiles do
  // not wait for them.
  let counting = false;
  async function countTags() {
    if (counting || Date.now() - tagsCounted < TAGS_EVERY) return;
    counting = true;
    try { await countTagsNow(); } catch (e) { /* the next load will */ } finally { counting = false; }
    dirty = true;
  }

  async function countTagsNow() {
    const found = new Map();
    let after = null;
    do {
      const answer = await hbd.getJSON(hostsQuery(['fields=status,tags', 'limit=10000', after ? `after=${encodeURIComponent(after)}` : '']));
      for (const h of answer.hosts) {
        for (const t of h.tags || []) {
          const c = found.get(String(t)) || { up: 0, all: 0 };
          c.all += 1;
          if (!isDown(h)) c.up += 1;
          found.set(String(t), c);
        }
      }
      after = answer.next;
    } while (after);
    tagCounts = found;
    tagsCounted = Date.now();
  }

  // The hosts (all of them, or the page shown) and the active alerts, in
  // two rounds of requests (at 100,000 hosts hbd reads its whole host
  // table for each). The first asks, side by side, for the down and
  // unreachable hosts (the problems), how many up hosts have each alert
  // level and how many are silenced: together, how many hosts there are.
  // Up to a page of them, the second is the whole list as ever (the same
  // cached bytes for every page); beyond that, the page shown.
  async function fetchHosts() {
    const mine = ++generation;
    const [active, problems, up, silenced] = await Promise.all([
      hbd.getJSON('/api/0/alerts'),
      hbd.getJSON(hostsQuery(['status=down,unreachable', FIELDS, `limit=${PAGE}`])),
      Promise.all(IN_ORDER.slice(2).map((s) => totalOf([s]))),
      totalOf(['silenced=yes']),
    ]);
    if (mine !== generation) return;
    // Down and unreachable hosts are counted among the problems, unless
    // there are more than a page of them.
    const [down, unreachable] = problems.hosts.length === problems.total
      ? ['down', 'unreachable'].map((s) => problems.hosts.filter((h) => hbd.statusOf(h) === s).length)
      : await Promise.all([totalOf(['status=down']), totalOf(['status=unreachable'])]);
    const byStatus = [down, unreachable, ...up];
    const all = byStatus.reduce((a, b) => a + b, 0);
    const whole = all <= PAGE ? await hbd.getJSON('/api/0/hosts') : null;
    if (mine !== generation) return;
    // Hosts that came meanwhile may make it more than a page after all.
    paged = !whole || whole.hosts.length > PAGE;
    hosts.clear();
    if (paged) {
      // The unfiltered queries' totals are the page's too while no filter is set.
      const page = await fetchPage(pageStarts[pageStarts.length - 1], filtered() ? null : byStatus);
      if (mine !== generation) return;
      list = page.rows;
      matching = page.total;
      nextStart = page.next;
      problemHosts = problems.hosts;
      problemTotal = problems.total;
      counts = { all, down, unreachable, ok: up[3], silenced };
      countTags();
    } else {
      for (const h of whole.hosts) hosts.set(h.name, h);
      pageStarts = [{ seg: 0, after: null, offset: 0 }];
    }
    ({ alerts, summary } = active);
    dirty = true;
  }

  async function load() {
    // The feed's recent events come from the journal, beside the hosts.
    const recent = feed.load(FEED_QUERY).catch((e) => note(`cannot load recent events: ${e.message}`));
    try {
      await Promise.all([fetchHosts(), loadNotify()]);
    } catch (e) {
      note(`cannot load: ${e.message}`);
    }
    await recent;
  }

  // What operators did (silences, acknowledgements, maintenance) changes
  // what hosts and alerts carry, and in a paged list a host's new status
  // or level moves it: load both again, at most once a second.
  let allDue = null;
  function reloadAll() {
    if (allDue) return;
    allDue = setTimeout(async () => {
      allDue = null;
      try { await fetchHosts(); } catch (e) { /* the next one will */ }
    }, 1000);
  }

  // Another page, or the first after the filters changed.
  async function showPage(starts) {
    pageStarts = starts;
    const mine = ++generation;
    try {
      const page = await fetchPage(pageStarts[pageStarts.length - 1]);
      if (mine !== generation) return;
      list = page.rows;
      matching = page.total;
      nextStart = page.next;
      viewport.scrollTop = 0;
      dirty = true;
      draw();
    } catch (e) {
      note(`cannot load the list: ${e.message}`);
    }
  }

  // Alert changes reload the active alerts, at most once a second.
  function reloadAlerts() {
    if (alertsDue) return;
    alertsDue = setTimeout(async () => {
      alertsDue = null;
      try { ({ alerts, summary } = await hbd.getJSON('/api/0/alerts')); dirty = true; } catch (e) { /* the next one will */ }
    }, 1000);
  }

  function matches(h) {
    if (tagFilter && !(h.tags || []).includes(tagFilter)) return false;
    const text = filter.value.trim().toLowerCase();
    if (text && !h.name.includes(text) && !String(h.address).includes(text)) return false;
    switch (statusFilter) {
      case '': return true;
      case 'down': return hbd.statusOf(h) === 'down';
      case 'unreachable': return hbd.statusOf(h) === 'unreachable';
      case 'silenced': return Boolean(h.silenced);
      case 'ok': return !isDown(h) && level(h) === 'OK';
      default: return level(h) === statusFilter;
    }
  }

  function drawProblems() {
    const rows = [];
    const downAlerts = new Map(alerts.filter((a) => a.plugin === 'heartbeat').map((a) => [a.hostname, a]));
    const down = (paged ? [...problemHosts] : [...hosts.values()].filter(isDown))
      .sort((a, b) => statusRank(b) - statusRank(a) || a.status_since - b.status_since);
    for (const h of down) {
      const status = hbd.statusOf(h);
      const row = hbd.el('tr', null, `problem-${status}`);
      const cell = hbd.el('td'); cell.appendChild(hostLink(h.name)); row.appendChild(cell);
      row.appendChild(hbd.el('td', status.toUpperCase(), `status-${status}`));
      row.appendChild(hbd.el('td', hbd.dateTime(h.status_since)));
      row.appendChild(hbd.el('td', hbd.duration(hbd.now() - h.status_since), 'ticking'));
      const details = hbd.el('td', `last seen ${hbd.ago(h.last_seen)} at ${h.address}`, 'marked');
      // The host's own marks (silenced, unreachable), then its host-down
      // alert's (acknowledged, hosts behind it).
      const alert = downAlerts.get(h.name) || {};
      details.append(...hbd.marks(h), ...hbd.marks({ acknowledged: alert.acknowledged, behind: alert.behind, silenced: h.silenced ? null : alert.silenced }));
      row.appendChild(details);
      rows.push(row);
      // What it said before it went silent: held, not counted.
      for (const a of alert.held || []) {
        const held = hbd.el('tr', null, 'problem-held');
        held.appendChild(hbd.el('td'));
        held.appendChild(hbd.el('td', `${a.level} (held)`, 'held'));
        held.appendChild(hbd.el('td', hbd.dateTime(a.since)));
        held.appendChild(hbd.el('td'));
        held.appendChild(hbd.el('td', `held while ${h.name} is down: ${a.message}`));
        rows.push(held);
      }
    }
    // More down than a page: the list's down and unreachable buttons show them all.
    if (paged && problemTotal > problemHosts.length) {
      const more = hbd.el('tr', null, 'problem-more');
      more.appendChild(hbd.el('td', `and ${problemTotal - problemHosts.length} more hosts down or unreachable: the list below shows them all (down, unreachable)`));
      more.firstChild.colSpan = 5;
      rows.push(more);
    }
    const active = alerts.filter((a) => a.plugin !== 'heartbeat')
      .sort((a, b) => RANK[b.level] - RANK[a.level] || a.since - b.since);
    for (const a of active) {
      const row = hbd.el('tr', null, `problem-${a.level}`);
      const cell = hbd.el('td'); cell.appendChild(hostLink(a.hostname)); row.appendChild(cell);
      row.appendChild(hbd.el('td', a.level, `level-${a.level}`));
      row.appendChild(hbd.el('td', hbd.dateTime(a.since)));
      row.appendChild(hbd.el('td', hbd.duration(hbd.now() - a.since)));
      const details = hbd.el('td', a.message, 'marked');
      details.append(...hbd.marks(a));
      row.appendChild(details);
      rows.push(row);
    }
    document.querySelector('#problems tbody').replaceChildren(...rows);
    document.getElementById('no-problems').hidden = rows.length > 0;
  }

  function drawCounts() {
    let { down, unreachable, silenced, ok, all } = counts;
    if (!paged) {
      down = 0; unreachable = 0; silenced = 0; ok = 0; all = hosts.size;
      for (const h of hosts.values()) {
        if (h.silenced) silenced += 1;
        if (hbd.statusOf(h) === 'unreachable') unreachable += 1;
        else if (isDown(h)) down += 1;
        else if (level(h) === 'OK') ok += 1;
      }
    }
    document.getElementById('n-down').textContent = down;
    // Tiles a live.html from templates_dir older than them may lack.
    for (const [id, count] of [['n-unreachable', unreachable], ['n-silenced', silenced]]) {
      const tile = document.getElementById(id);
      if (tile) tile.textContent = count;
    }
    document.getElementById('n-critical').textContent = summary.critical;
    document.getElementById('n-warning').textContent = summary.warning;
    document.getElementById('n-unknown').textContent = summary.unknown;
    document.getElementById('n-ok').textContent = ok;
    document.getElementById('empty').hidden = all > 0;
    drawTagTiles();
  }

  // Problems first in the list too: down, then by alert level, then by
  // name (paged, the API's queries come in that order).
  function rebuildList() {
    drawTagPicker();
    if (!paged) {
      list = [...hosts.values()].filter(matches).sort((a, b) =>
        (statusRank(b) - statusRank(a)) || (RANK[level(b)] - RANK[level(a)]) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      matching = list.length;
    }
    const all = paged ? counts.all : hosts.size;
    positions.clear();
    list.forEach((h, i) => positions.set(h.name, i));
    body.style.height = `${list.length * ROW}px`;
    document.getElementById('shown').textContent = matching === all ? `${all}` : `${matching} of ${all}`;
    drawPager();
    // Paged, hbd matches the filter against names only.
    filter.placeholder = paged ? 'name, or a pattern: db*' : 'name or address';
  }

  // Which rows of how many this page shows, and the way to the others.
  function drawPager() {
    if (!pager) return;
    const start = pageStarts[pageStarts.length - 1];
    pager.hidden = !paged || (pageStarts.length === 1 && !nextStart);
    document.getElementById('page-range').textContent = list.length
      ? `hosts ${hbd.number(start.offset + 1)}–${hbd.number(start.offset + list.length)} of ${hbd.number(matching)}` : '';
    document.getElementById('page-previous').disabled = pageStarts.length === 1;
    document.getElementById('page-next').disabled = !nextStart;
  }

  // Each tag's hosts, up and in all: counted here when the page holds
  // every host, else over the API's pages (countTags).
  function tagsNow() {
    if (paged) return tagCounts;
    const found = new Map();
    for (const h of hosts.values()) {
      for (const t of h.tags || []) {
        const c = found.get(String(t)) || { up: 0, all: 0 };
        c.all += 1;
        if (!isDown(h)) c.up += 1;
        found.set(String(t), c);
      }
    }
    return found;
  }

  // A tile per tag, `up/all` of its hosts (as its badge says); a click
  // filters the list by it, a second click shows every host again.
  function drawTagTiles() {
    const box = document.getElementById('tag-tiles');
    if (!box) return;
    const byTag = tagsNow();
    const tiles = [...byTag.keys()].sort().map((tag) => {
      const { up, all } = byTag.get(tag);
      const tile = hbd.el('li', null, `tile tile-${up === all ? 'ok' : 'down'}`);
      const button = hbd.el('button');
      button.type = 'button';
      button.setAttribute('aria-pressed', String(tag === tagFilter));
      button.append(hbd.el('b', `${up}/${all}`), document.createTextNode(` ${tag} up`));
      button.addEventListener('click', () => setTagFilter(tag === tagFilter ? '' : tag));
      tile.appendChild(button);
      return tile;
    });
    box.replaceChildren(...tiles);
    box.hidden = tiles.length === 0;
  }

  // The picker offers every tag some host has (and the one asked for).
  function drawTagPicker() {
    if (!tagPicker) return;
    const tags = new Set([...(tagFilter ? [tagFilter] : []), ...tagsNow().keys()]);
    const sorted = [...tags].sort();
    const shown = [...tagPicker.options].slice(1).map((o) => o.value);
    if (shown.join('\n') !== sorted.join('\n')) {
      const all = hbd.el('option', 'all');
      all.value = '';
      tagPicker.replaceChildren(all, ...sorted.map((t) => { const o = hbd.el('option', t); o.value = t; return o; }));
    }
    tagPicker.value = tagFilter;
  }

  // Only the rows in view (and a few around) exist in the page.
  function drawRows() {
    const first = Math.max(0, Math.floor(viewport.scrollTop / ROW) - 5);
    const count = Math.ceil(viewport.clientHeight / ROW) + 10;
    const rows = list.slice(first, first + count).map((h, i) => {
      const row = hbd.el('div', null, 'vrow');
      row.setAttribute('role', 'row');
      row.style.transform = `translateY(${(first + i) * ROW}px)`;
      const cell = (text, className) => { const c = hbd.el('span', text, className); c.setAttribute('role', 'cell'); row.appendChild(c); return c; };
      cell(null, 'host-cell').append(hostLink(h.name), ...hbd.tagMarks(h));
      const status = hbd.statusOf(h);
      cell(status, `status-${status}`).append(...hbd.marks({ silenced: h.silenced, kind: h.kind, job: h.job }, true));
      cell(level(h), `level-${level(h)}`);
      cell(hbd.ago(h.last_seen));
      cell(h.latency_ms === null || h.latency_ms === undefined ? '–' : `${hbd.number(h.latency_ms)} ms`);
      cell(h.address);
      const day = h.availability && h.availability['24h'];
      cell(day === null || day === undefined ? '–' : `${day.toFixed(day === 100 ? 0 : 2)} %`);
      return row;
    });
    body.replaceChildren(...rows);
  }

  function draw() {
    if (dirty) {
      dirty = false;
      rebuildList();
      drawProblems();
      drawCounts();
    }
    drawRows();
  }

  // The page's own notes (a failed load) in the feed.
  function note(text) {
    feed.add({ type: 'note', at: hbd.now(), text });
  }

  function setStatus(name, status, at) {
    const host = paged ? onPage(name) : hosts.get(name);
    if (host) { host.status = status; host.status_since = at; dirty = true; }
    // Paged, a host that changes status changes the counts and may move.
    if (paged) reloadAll();
  }

  // The host of this name on the page shown, if it is there (`positions`
  // is of the list as last drawn: a page fetched since is not yet in it).
  function onPage(name) {
    const host = list[positions.get(name)];
    return host && host.name === name ? host : undefined;
  }

  // Whether a host's new data moves it in the list or changes a count.
  const moves = (known, now) => known.status !== now.status || level(known) !== level(now)
    || Boolean(known.silenced) !== Boolean(now.silenced) || String(known.tags || '') !== String(now.tags || '');

  function onMessage(m) {
    switch (m.type) {
      case 'snapshot':
        // Paged, the page holds only what it fetched (the load that a
        // snapshot starts).
        if (paged || !Array.isArray(m.hosts)) break;
        hosts.clear();
        for (const h of m.hosts) hosts.set(h.name, h);
        dirty = true;
        break;
      case 'heartbeat': {
        if (paged) {
          // A host on the page shows its news; the others are not here.
          const known = onPage(m.host.name);
          if (!known) break;
          if (moves(known, m.host)) { dirty = true; reloadAll(); }
          list[positions.get(m.host.name)] = m.host;
          break;
        }
        const known = hosts.get(m.host.name);
        // A new host, or one whose place in the list or count moves: sort again.
        if (!known || moves(known, m.host)) dirty = true;
        hosts.set(m.host.name, m.host);
        if (!dirty) {
          const i = positions.get(m.host.name);
          if (i !== undefined) list[i] = m.host;
        }
        break;
      }
      case 'host_up': case 'host_reachable': setStatus(m.name, 'up', m.at); feed.add(m); break;
      case 'host_down':
        setStatus(m.name, m.status === 'unreachable' ? 'unreachable' : 'down', m.at);
        feed.add(m);
        // Which parents it is behind comes with the host: load it.
        if (m.status === 'unreachable') reloadAll();
        break;
      case 'host_unreachable': setStatus(m.name, 'unreachable', m.at); feed.add(m); reloadAll(); break;
      case 'silence_added': case 'silence_ended': case 'maintenance_started': case 'maintenance_ended':
      case 'acknowledged': case 'ack_removed':
        feed.add(m); reloadAll(); break;
      case 'host_forgotten':
        hosts.delete(m.name); dirty = true; reloadAlerts(); feed.add(m);
        if (paged) reloadAll();
        break;
      // Paged, a new host is counted (and maybe shown) by the next load.
      case 'host_new': if (paged) reloadAll(); feed.add(m); break;
      // An alert's level is a host's place in a paged list.
      case 'alert': feed.add(m); if (paged) reloadAll(); else reloadAlerts(); break;
      case 'plugin': break;
      default: feed.add(m); break;
    }
  }

  // The first page, after a filter changed; paged, the filter box asks
  // hbd once typing pauses.
  let typing = null;
  function filtersChanged(wait) {
    dirty = true;
    if (!paged) { draw(); return; }
    clearTimeout(typing);
    typing = setTimeout(() => showPage([{ seg: 0, after: null, offset: 0 }]), wait);
  }

  for (const button of document.querySelectorAll('#status-filters button')) {
    button.addEventListener('click', () => {
      statusFilter = button.dataset.status;
      for (const b of document.querySelectorAll('#status-filters button')) b.setAttribute('aria-pressed', String(b === button));
      filtersChanged(0);
    });
  }
  filter.addEventListener('input', () => filtersChanged(300));
  if (pager) {
    document.getElementById('page-next').addEventListener('click', () => { if (nextStart) showPage([...pageStarts, nextStart]); });
    document.getElementById('page-previous').addEventListener('click', () => { if (pageStarts.length > 1) showPage(pageStarts.slice(0, -1)); });
  }
  // The address says which tag, so it can be bookmarked and shared.
  function setTagFilter(tag) {
    tagFilter = tag;
    const search = new URLSearchParams(location.search);
    if (tagFilter) search.set('tag', tagFilter); else search.delete('tag');
    history.replaceState(null, '', search.size ? `${location.pathname}?${search}` : location.pathname);
    filtersChanged(0);
  }
  if (tagPicker) tagPicker.addEventListener('change', () => setTagFilter(tagPicker.value));
  viewport.addEventListener('scroll', drawRows, { passive: true });
  // Paged, the WebSocket's snapshot of every host would be dropped: ask for it without them.
  hbd.live(load, onMessage, () => (paged ? '?snapshot=none' : ''));
  setInterval(draw, 250);
  // Ages tick without data changing: the problems' durations once a second.
  setInterval(drawProblems, 1000);
})();
