// Renders the market page's tables from plain data: the symbol list, the
// book ladder (asks above, bids below, best in the middle, a depth bar
// behind each size) and the trades tape (newest first).

import { compareDecimals, plotValue, subtractDecimals } from "./decimal.js";
import { element, formatTime, noteRow, row } from "./dom.js";

export function renderSymbols(body, symbols, current) {
  if (!symbols.length) {
    body.replaceChildren(noteRow(4, "No symbols yet."));
    return;
  }
  body.replaceChildren(...symbols.map((entry) => symbolRow(entry, entry.symbol === current)));
}

function symbolRow({ symbol, last, bid, ask }, isCurrent) {
  const link = element("a", {
    text: symbol,
    attrs: { href: `/?symbol=${encodeURIComponent(symbol)}`, "data-symbol": symbol },
  });
  if (isCurrent) link.setAttribute("aria-current", "true");
  const name = element("th", { attrs: { scope: "row" } }, [link]);
  const prices = row([last, bid, ask]).children;
  return element("tr", { className: isCurrent ? "current" : "" }, [name, ...prices]);
}

/** A table body holding only a note (loading, nothing yet, …). */
export function renderNote(body, columns, text) {
  body.replaceChildren(noteRow(columns, text));
}

export function renderLadder(body, market, depth) {
  const asks = market.levels("sell", depth);
  const bids = market.levels("buy", depth);
  if (!asks.length && !bids.length) {
    body.replaceChildren(noteRow(3, "No resting orders."));
    return;
  }
  const largest = Math.max(...[...asks, ...bids].map(([, shares]) => plotValue(shares)));
  body.replaceChildren(
    ...asks.reverse().map((level) => levelRow("ask", level, largest)),
    spreadRow(market.bestPrice("buy"), market.bestPrice("sell")),
    ...bids.map((level) => levelRow("bid", level, largest)),
  );
}

function levelRow(side, [price, shares], largest) {
  const bar = element("span", { className: "bar" });
  bar.style.setProperty("--fill", String(Math.max(plotValue(shares) / largest, 0.02)));
  const size = element("td", { className: "size" }, [bar, element("span", { text: shares })]);
  const priceCell = element("th", { className: "price", text: price, attrs: { scope: "row" } });
  const cells = side === "bid" ? [size, priceCell, element("td")] : [element("td"), priceCell, size];
  return element("tr", { className: side }, cells);
}

function spreadRow(bestBid, bestAsk) {
  const text = bestBid && bestAsk ? `spread ${subtractDecimals(bestAsk, bestBid)}` : "no spread";
  const middle = element("th", { text, attrs: { scope: "row" } });
  return element("tr", { className: "spread" }, [element("td"), middle, element("td")]);
}

export function renderTape(body, trades, limit, freshAfterSeq) {
  if (!trades.length) {
    body.replaceChildren(noteRow(3, "No trades yet."));
    return;
  }
  const first = Math.max(trades.length - limit, 0);
  const rows = [];
  for (let index = trades.length - 1; index >= first; index -= 1) {
    const trade = trades[index];
    const direction = index > 0 ? tick(trades[index - 1].price, trade.price) : "flat";
    const fresh = freshAfterSeq !== null && trade.seq > freshAfterSeq;
    rows.push(tradeRow(trade, direction, fresh));
  }
  body.replaceChildren(...rows);
}

function tick(previous, price) {
  const order = compareDecimals(price, previous);
  return order > 0 ? "up" : order < 0 ? "down" : "flat";
}

const TICK_MARKS = { up: "▲", down: "▼", flat: "" };

function tradeRow(trade, direction, fresh) {
  const mark = element("span", { className: "tick", text: TICK_MARKS[direction] });
  mark.setAttribute("aria-hidden", "true");
  const price = element("span", { text: trade.price });
  const time = element("time", {
    text: formatTime(trade.time),
    attrs: { datetime: new Date(trade.time * 1000).toISOString() },
  });
  const classes = [direction, fresh ? "fresh" : ""].join(" ").trim();
  return element("tr", { className: classes }, [
    element("td", { className: "time" }, [time]),
    element("td", { className: "price" }, [price, mark]),
    element("td", { className: "size", text: trade.shares }),
  ]);
}
