// One symbol's public market as the page holds it: the levels of each side
// and the recent trades, rebuilt from a feed snapshot and kept current by
// applying each following message exactly once, in seq order.

import { compareDecimals } from "./decimal.js";

/** Trades kept for the tape and the chart. */
export const TRADES_KEPT = 500;

export class SymbolMarket {
  constructor(snapshot) {
    this.symbol = snapshot.symbol;
    this.seq = snapshot.seq;
    this.bids = new Map(snapshot.bids);
    this.asks = new Map(snapshot.asks);
    this.trades = snapshot.trades.slice(-TRADES_KEPT);
  }

  /**
   * Applies a "book" or "trade" message. Returns "applied", "old" (already
   * included: ignored) or "gap" (a message was missed: this state is no
   * longer exact and a new snapshot is needed).
   */
  apply(message) {
    if (message.seq <= this.seq) return "old";
    if (message.seq > this.seq + 1) return "gap";
    if (message.type === "book") this.applyChanges(message.changes);
    else this.addTrade(message);
    this.seq = message.seq;
    return "applied";
  }

  applyChanges(changes) {
    for (const [side, price, shares] of changes) {
      const levels = side === "buy" ? this.bids : this.asks;
      if (compareDecimals(shares, "0") === 0) levels.delete(price);
      else levels.set(price, shares);
    }
  }

  addTrade({ seq, price, shares, time }) {
    this.trades.push({ seq, price, shares, time });
    if (this.trades.length > TRADES_KEPT) this.trades.shift();
  }

  /** Up to `depth` levels of "buy" or "sell", best first, as [price, shares]. */
  levels(side, depth) {
    const buy = side === "buy";
    const entries = [...(buy ? this.bids : this.asks).entries()];
    entries.sort(([a], [b]) => (buy ? compareDecimals(b, a) : compareDecimals(a, b)));
    return entries.slice(0, depth);
  }

  bestPrice(side) {
    const better = side === "buy" ? 1 : -1;
    let best = null;
    for (const price of (side === "buy" ? this.bids : this.asks).keys()) {
      if (best === null || compareDecimals(price, best) === better) best = price;
    }
    return best;
  }

  lastTrade() {
    return this.trades.length ? this.trades[this.trades.length - 1] : null;
  }
}
