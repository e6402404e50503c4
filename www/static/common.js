// Shared by the pages: element building (text only, never HTML: everything
// shown comes from clients and may be hostile), formatting, the API and the
// WebSocket with reconnection.
'use strict';

const hbd = (() => {
  const wsPort = document.querySelector('meta[name="hbd-ws-port"]').content;

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
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

  function number(value) {
    if (typeof value !== 'number') return String(value);
    return Number.isInteger(value) ? String(value) : value.toFixed(Math.abs(value) < 10 ? 2 : 1);
  }

  async function getJSON(path) {
    const response = await fetch(path, { cache: 'no-store' });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || `${response.status}`);
    return body;
  }

  function setConnection(online) {
    const badge = document.getElementById('connection');
    badge.textContent = online ? 'live' : 'reconnecting…';
    badge.className = `badge ${online ? 'online' : 'offline'}`;
  }

  // Reconnects with backoff (1 s doubling to 15 s), so a page left open
  // follows hbd through restarts; each connection starts with a snapshot.
  function connect(onMessage) {
    let delay = 1000;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    function open() {
      const socket = new WebSocket(`${scheme}://${location.hostname}:${wsPort}/`);
      socket.onopen = () => { delay = 1000; setConnection(true); };
      socket.onmessage = (event) => {
        let message;
        try { message = JSON.parse(event.data); } catch (e) { return; }
        onMessage(message);
      };
      socket.onclose = () => {
        setConnection(false);
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 15000);
      };
      socket.onerror = () => socket.close();
    }
    open();
  }

  return { el, duration, ago, clock, number, getJSON, connect };
})();
