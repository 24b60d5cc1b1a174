// Small DOM and formatting helpers shared by the market page and the
// leaderboard. Text always goes in through textContent, never as HTML.

/** A new element: `options` may hold className, text and attrs. */
export function element(tag, options = {}, children = []) {
  const node = document.createElement(tag);
  if (options.className) node.className = options.className;
  if (options.text !== undefined && options.text !== null) node.textContent = options.text;
  for (const [name, value] of Object.entries(options.attrs ?? {})) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

/** A table row of data cells, each a text or an element. */
export function row(cells, className) {
  const cellNodes = cells.map((cell) =>
    cell instanceof Node ? element("td", {}, [cell]) : element("td", { text: cell ?? "–" }),
  );
  return element("tr", { className }, cellNodes);
}

/** A table row holding only a note (loading, nothing yet, …). */
export function noteRow(columns, text) {
  const cell = element("td", { className: "empty", text, attrs: { colspan: String(columns) } });
  return element("tr", {}, [cell]);
}

const CLOCK = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hour12: false,
});

/** Epoch seconds as the local wall-clock time. */
export function formatTime(epochSeconds) {
  return CLOCK.format(new Date(epochSeconds * 1000));
}

/** GET `url` as JSON: { ok, status, data } (data null unless ok). */
export async function getJson(url) {
  try {
    const response = await fetch(url, { cache: "no-store" });
    const data = response.ok ? await response.json() : null;
    return { ok: response.ok, status: response.status, data };
  } catch {
    return { ok: false, status: 0, data: null };
  }
}

/** Calls `task` now and then every `intervalMs`, one call at a time. */
export function repeat(task, intervalMs) {
  const run = async () => {
    await task();
    setTimeout(run, intervalMs);
  };
  run();
}
