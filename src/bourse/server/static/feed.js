// The page's WebSocket to /ws: follows one symbol, keeps its market exact
// (a snapshot, then every message in seq order), asks again for a snapshot
// when a message was missed, and reconnects with growing delays when the
// connection drops.

import { SymbolMarket } from "./market.js";

const RETRY_DELAYS_MS = [500, 1000, 2000, 4000, 8000, 15000];
/** A connection that stayed open this long starts the delays over. */
const STEADY_MS = 10000;
const CHANNELS = ["book", "trades"];

export class FeedConnection {
  /**
   * `handlers`: onMarket(market) after each change, onStatus(status,
   * detail) with status "connecting" | "live" | "resyncing" |
   * "reconnecting", onError(message, refused) for the server's errors
   * (refused: the followed symbol was not subscribed, so the last market
   * given is no longer followed).
   */
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.symbol = null;
    this.market = null;
    this.synced = false;
    this.refused = false;
    this.socket = null;
    this.failures = 0;
    this.openedAt = null;
  }

  start() {
    this.connect("connecting");
  }

  /** Follows `symbol` (or nothing when null) instead of the previous one. */
  follow(symbol) {
    if (symbol === this.symbol) return;
    if (this.symbol) this.send({ op: "unsubscribe", symbols: [this.symbol] });
    this.symbol = symbol;
    this.market = null;
    this.synced = false;
    this.refused = false;
    if (symbol) this.send({ op: "subscribe", symbols: [symbol], channels: CHANNELS });
  }

  connect(status) {
    this.handlers.onStatus(status);
    const socket = new WebSocket(this.url);
    socket.addEventListener("open", () => this.opened());
    socket.addEventListener("message", (event) => this.received(event.data));
    socket.addEventListener("close", () => this.closed(socket));
    this.socket = socket;
  }

  opened() {
    this.openedAt = performance.now();
    this.handlers.onStatus("live");
    if (this.symbol) this.send({ op: "subscribe", symbols: [this.symbol], channels: CHANNELS });
  }

  closed(socket) {
    if (socket !== this.socket) return;
    this.socket = null;
    this.synced = false;
    if (this.openedAt !== null && performance.now() - this.openedAt > STEADY_MS) this.failures = 0;
    this.openedAt = null;
    const delay = RETRY_DELAYS_MS[Math.min(this.failures, RETRY_DELAYS_MS.length - 1)];
    this.failures += 1;
    const jittered = Math.round(delay * (0.8 + Math.random() * 0.4));
    this.handlers.onStatus("reconnecting", jittered);
    setTimeout(() => this.connect("reconnecting"), jittered);
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(message));
    }
  }

  /** A frame holds one message, or an array of them in order. */
  received(text) {
    this.failures = 0;
    const frame = JSON.parse(text);
    for (const message of Array.isArray(frame) ? frame : [frame]) this.take(message);
  }

  take(message) {
    if (message.type === "error") this.refuse(message.message);
    else if (message.symbol !== this.symbol) return;
    else if (message.type === "snapshot") this.replace(message);
    else if (message.type === "book" || message.type === "trade") this.update(message);
  }

  refuse(reason) {
    this.refused = !this.synced;
    this.handlers.onError(reason, this.refused);
  }

  /** Asks again for a symbol the server refused (say, not created yet). */
  retry() {
    if (this.refused && this.symbol) {
      this.refused = false;
      this.resubscribe();
    }
  }

  replace(snapshot) {
    this.market = new SymbolMarket(snapshot);
    this.synced = true;
    this.handlers.onStatus("live");
    this.handlers.onMarket(this.market);
  }

  update(message) {
    if (!this.synced) return;
    const outcome = this.market.apply(message);
    if (outcome === "applied") this.handlers.onMarket(this.market);
    else if (outcome === "gap") this.resubscribe();
  }

  resubscribe() {
    this.synced = false;
    this.handlers.onStatus("resyncing");
    this.send({ op: "unsubscribe", symbols: [this.symbol] });
    this.send({ op: "subscribe", symbols: [this.symbol], channels: CHANNELS });
  }
}
