// One WebSocket that stays up: reconnects with exponential backoff and
// jitter (capped at 30 s, reset once the server says connection_established),
// at once when the browser comes back online or the tab becomes visible, and
// when the server has been silent for more than two heartbeats.

const CAP_MS = 30000;
const PING_MS = 25000;

export class Connection {
  /**
   * @param {() => string} url  called before each attempt (it may carry ?since_seq=)
   * @param {{onFrame, onState, onOpen?, onRefused?}} handlers
   */
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.ws = null;
    this.attempt = 0;
    this.state = 'connecting';
    this.retryAt = 0;
    this.timer = 0;
    this.ticker = 0;
    this.stopped = false;
    this.lastFrameAt = Date.now();
    this.heartbeatMs = 30000;
    this.handshakeFailures = 0;
    this.onOnline = () => this.retryNow();
    this.onVisible = () => {
      if (document.visibilityState === 'visible' && this.state !== 'connected' && this.state !== 'connecting') this.retryNow();
    };
    // An open socket may well survive a short network blip; if it does not,
    // the watchdog notices. Only a connection already down is shown offline.
    this.onOffline = () => {
      if (this.state !== 'connected') this.setState('offline');
    };
  }

  start() {
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
    document.addEventListener('visibilitychange', this.onVisible);
    this.watchdog = setInterval(() => this.checkAlive(), 5000);
    this.pinger = setInterval(() => this.send({ type: 'ping' }), PING_MS);
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.ticker);
    clearInterval(this.watchdog);
    clearInterval(this.pinger);
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOffline);
    document.removeEventListener('visibilitychange', this.onVisible);
    this.detach(1000);
  }

  get isOpen() {
    return this.state === 'connected' && this.ws?.readyState === WebSocket.OPEN;
  }

  /** Sends a frame if the socket is open; false otherwise (the caller keeps it pending). */
  send(frame) {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  retryNow() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    clearInterval(this.ticker);
    if (this.ws && (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING)) return;
    this.open();
  }

  open() {
    if (this.stopped) return;
    this.setState('connecting');
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try {
      ws = new WebSocket(`${scheme}//${location.host}${this.url()}`);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.handshakeFailures = 0;
      this.lastFrameAt = Date.now();
    };
    ws.onmessage = (event) => {
      this.lastFrameAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame.type === 'connection_established') {
        this.attempt = 0;
        if (frame.heartbeat_interval) this.heartbeatMs = frame.heartbeat_interval * 1000;
        this.setState('connected');
      }
      this.handlers.onFrame(frame);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (!opened) {
        this.handshakeFailures += 1;
        // The browser hides the HTTP status of a refused upgrade: after two
        // refusals in a row, let the page find out why (e.g. logged out).
        if (this.handshakeFailures >= 2) this.handlers.onRefused?.();
      }
      if (event.code === 1008) {
        this.setState('closed');
        this.handlers.onClosed?.(event);
        return;
      }
      this.scheduleReconnect();
    };
  }

  /** Forgets the current socket without waiting for its close handshake. */
  detach(code) {
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = null;
      ws.onmessage = null;
      try {
        ws.close(code);
      } catch {
        /* already closed */
      }
    }
  }

  checkAlive() {
    if (this.state !== 'connected') return;
    if (Date.now() - this.lastFrameAt > 2 * this.heartbeatMs + 5000) {
      this.detach(4000);
      this.scheduleReconnect();
    }
  }

  scheduleReconnect() {
    if (this.stopped) return;
    const base = Math.min(CAP_MS, 1000 * 2 ** this.attempt);
    const delay = base / 2 + Math.random() * (base / 2);
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    clearTimeout(this.timer);
    clearInterval(this.ticker);
    this.timer = setTimeout(() => this.open(), delay);
    this.ticker = setInterval(() => this.setState(this.state), 1000);
    this.setState(navigator.onLine === false ? 'offline' : 'reconnecting');
  }

  setState(state) {
    if (state !== 'reconnecting' && state !== 'offline') clearInterval(this.ticker);
    this.state = state;
    const seconds = Math.max(0, Math.ceil((this.retryAt - Date.now()) / 1000));
    this.handlers.onState(state, seconds);
  }
}

/** A unique id for a message we send (the server de-duplicates by it). */
export function newClientId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  return `c-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}
