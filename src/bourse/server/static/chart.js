// The price chart: an SVG step line of the recent trades of one symbol, one
// step per trade, with the highest, lowest and last prices labelled exactly
// as they were traded (floats only place the points).

import { compareDecimals, plotValue } from "./decimal.js";
import { formatTime } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
/** Trades the chart shows, newest last. */
export const PLOTTED_TRADES = 200;
const MARGIN = { top: 14, bottom: 22, left: 6 };
/** Width of one digit of the labels, for the room on the right. */
const DIGIT_WIDTH = 7;
const LABEL_GAP = 16;

function shape(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Draws `trades` (oldest first) into `svg`, sized width × height pixels. */
export function drawChart(svg, trades, width, height) {
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  const recent = trades.slice(-PLOTTED_TRADES);
  if (!recent.length) {
    const note = { x: width / 2, y: height / 2, class: "chart-note", "text-anchor": "middle" };
    svg.replaceChildren(shape("text", note, "No trades yet"));
    return;
  }
  const scale = scaleFor(recent, width, height);
  svg.replaceChildren(
    ...gridlines(scale, width, recent[recent.length - 1].price),
    shape("path", { class: "chart-area", d: `${stepPath(recent, scale)} ${closeArea(scale)}` }),
    shape("path", { class: "chart-line", d: stepPath(recent, scale) }),
    ...lastPriceMark(recent, scale, width),
    ...timeLabels(recent, scale, height),
  );
}

function scaleFor(recent, width, height) {
  const low = extreme(recent, -1);
  const high = extreme(recent, 1);
  const lowValue = plotValue(low);
  const highValue = plotValue(high);
  const pad = (highValue - lowValue) * 0.12 || Math.abs(highValue) * 0.01 || 1;
  const top = highValue + pad;
  const plotHeight = height - MARGIN.top - MARGIN.bottom;
  const longest = Math.max(low.length, high.length, recent[recent.length - 1].price.length);
  const plotWidth = width - MARGIN.left - Math.max(56, DIGIT_WIDTH * longest + 22);
  const steps = Math.max(recent.length - 1, 1);
  return {
    low,
    high,
    x: (index) => MARGIN.left + (recent.length === 1 ? plotWidth : (index / steps) * plotWidth),
    y: (price) => MARGIN.top + ((top - plotValue(price)) / (2 * pad + highValue - lowValue)) * plotHeight,
    right: MARGIN.left + plotWidth,
    bottom: height - MARGIN.bottom,
  };
}

function extreme(trades, direction) {
  let best = trades[0].price;
  for (const { price } of trades) if (compareDecimals(price, best) === direction) best = price;
  return best;
}

function stepPath(recent, scale) {
  const start = recent.length === 1 ? MARGIN.left : scale.x(0);
  const parts = [`M${start},${scale.y(recent[0].price)}`];
  recent.forEach(({ price }, index) => {
    if (index > 0) parts.push(`H${scale.x(index)}`, `V${scale.y(price)}`);
  });
  parts.push(`H${scale.right}`);
  return parts.join(" ");
}

function closeArea(scale) {
  return `V${scale.bottom} H${MARGIN.left} Z`;
}

/** Lines at the highest and lowest prices, labelled unless the last
 * price's tag would cover the label. */
function gridlines(scale, width, lastPrice) {
  const lastY = scale.y(lastPrice);
  const marks = [];
  for (const price of new Set([scale.high, scale.low])) {
    const y = scale.y(price);
    marks.push(shape("line", { class: "chart-grid", x1: MARGIN.left, x2: scale.right, y1: y, y2: y }));
    if (Math.abs(y - lastY) >= LABEL_GAP) {
      marks.push(shape("text", { class: "chart-label", x: width - 4, y: y + 4, "text-anchor": "end" }, price));
    }
  }
  return marks;
}

function lastPriceMark(recent, scale, width) {
  const { price } = recent[recent.length - 1];
  const y = scale.y(price);
  return [
    shape("circle", { class: "chart-dot", cx: scale.right, cy: y, r: 3.5 }),
    shape("rect", { class: "chart-tag", x: scale.right + 6, y: y - 9, width: width - scale.right - 8, height: 18, rx: 3 }),
    shape("text", { class: "chart-tag-text", x: width - 4, y: y + 4, "text-anchor": "end" }, price),
  ];
}

function timeLabels(recent, scale, height) {
  const y = height - 6;
  const first = shape("text", { class: "chart-label", x: MARGIN.left, y }, formatTime(recent[0].time));
  const last = formatTime(recent[recent.length - 1].time);
  const end = shape("text", { class: "chart-label", x: scale.right, y, "text-anchor": "end" }, last);
  return [first, end];
}
