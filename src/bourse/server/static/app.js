// The page's module: it starts the view that view.js has shown (the
// leaderboard's code is leaderboard.js). The market view is here: the symbol
// list (polled from /api/symbols), the chosen symbol's live book, tape and
// chart (from the /ws feed), and the URL that names the chosen symbol
// (/?symbol=SPY).

import { drawChart, PLOTTED_TRADES } from "./chart.js";
import { getJson, repeat } from "./dom.js";
import { FeedConnection } from "./feed.js";
import { startLeaderboard } from "./leaderboard.js";
import { renderLadder, renderNote, renderSymbols, renderTape } from "./views.js";

const SYMBOLS_EVERY_MS = 3000;
const LADDER_DEPTH = 10;
const TAPE_ROWS = 60;
const STATUS_TEXT = {
  connecting: "connecting…",
  live: "live",
  resyncing: "resyncing…",
  reconnecting: "reconnecting…",
};

const byId = (id) => document.getElementById(id);
const page = { symbol: null, symbols: null, market: null, shownSeq: null, drawing: false };

const feed = new FeedConnection(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`, {
  onMarket(market) {
    page.market = market;
    showError(null);
    scheduleRender();
  },
  onStatus: showStatus,
  onError(message, refused) {
    showError(message);
    if (refused) page.market = null;
    scheduleRender();
  },
});

function choose(symbol) {
  if (symbol === page.symbol) return;
  page.symbol = symbol;
  page.market = null;
  page.shownSeq = null;
  history.replaceState(null, "", symbol ? `?symbol=${encodeURIComponent(symbol)}` : location.pathname);
  document.title = symbol ? `${symbol} · bourse` : "bourse · market";
  byId("placeholder").hidden = Boolean(symbol);
  byId("symbol-view").hidden = !symbol;
  byId("symbol-name").textContent = symbol ?? "";
  showError(null);
  if (page.symbols) renderSymbols(byId("symbols-body"), page.symbols, symbol);
  feed.follow(symbol);
  scheduleRender();
}

function scheduleRender() {
  if (page.drawing) return;
  page.drawing = true;
  requestAnimationFrame(render);
}

function render() {
  page.drawing = false;
  const { market } = page;
  if (!page.symbol) return;
  if (!market) {
    renderNote(byId("ladder-body"), 3, "Waiting for the feed…");
    renderNote(byId("tape-body"), 3, "Waiting for the feed…");
    renderQuote(null);
    byId("chart").replaceChildren();
    byId("chart").setAttribute("aria-label", "No trades yet");
    return;
  }
  renderLadder(byId("ladder-body"), market, LADDER_DEPTH);
  renderTape(byId("tape-body"), market.trades, TAPE_ROWS, page.shownSeq);
  page.shownSeq = market.lastTrade()?.seq ?? page.shownSeq;
  renderQuote(market);
  renderChart(market);
  showInList(market);
}

/** The chosen symbol's row of the list, as live as the feed. */
function showInList(market) {
  const entry = page.symbols?.find(({ symbol }) => symbol === market.symbol);
  if (!entry) return;
  Object.assign(entry, {
    last: market.lastTrade()?.price ?? entry.last,
    bid: market.bestPrice("buy"),
    ask: market.bestPrice("sell"),
  });
  renderSymbols(byId("symbols-body"), page.symbols, page.symbol);
}

function renderQuote(market) {
  byId("quote-last").textContent = market?.lastTrade()?.price ?? "–";
  byId("quote-bid").textContent = market?.bestPrice("buy") ?? "–";
  byId("quote-ask").textContent = market?.bestPrice("sell") ?? "–";
}

function renderChart(market) {
  const box = byId("chart-box");
  const chart = byId("chart");
  drawChart(chart, market.trades, box.clientWidth, box.clientHeight);
  const last = market.lastTrade();
  const label = last
    ? `Price of the last ${Math.min(market.trades.length, PLOTTED_TRADES)} trades of ${market.symbol}, last ${last.price}`
    : "No trades yet";
  chart.setAttribute("aria-label", label);
}

function showStatus(status, retryMs) {
  document.body.dataset.feed = status;
  const seconds = retryMs ? ` in ${Math.max(1, Math.round(retryMs / 1000))} s` : "";
  byId("feed-status").textContent = status === "reconnecting" ? `reconnecting${seconds}…` : STATUS_TEXT[status];
}

function showError(message) {
  const box = byId("feed-error");
  box.hidden = !message;
  box.textContent = message ?? "";
}

async function refreshSymbols() {
  const { ok, data } = await getJson("/api/symbols");
  if (!ok) return;
  page.symbols = data;
  renderSymbols(byId("symbols-body"), data, page.symbol);
  if (data.some((entry) => entry.symbol === page.symbol)) feed.retry();
}

async function offerLeaderboard() {
  const { ok } = await getJson("/api/leaderboard");
  byId("leaderboard-link").hidden = !ok;
}

function startMarket() {
  byId("symbols-body").addEventListener("click", (event) => {
    const link = event.target.closest("a[data-symbol]");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    choose(link.dataset.symbol);
  });
  new ResizeObserver(scheduleRender).observe(byId("chart-box"));

  feed.start();
  choose(new URLSearchParams(location.search).get("symbol") || null);
  repeat(refreshSymbols, SYMBOLS_EVERY_MS);
  offerLeaderboard();
}

if (document.documentElement.dataset.view === "leaderboard") startLeaderboard();
else startMarket();
