// The leaderboard view (index.html at /leaderboard, shown by view.js):
// accounts ranked by value, from /api/leaderboard, refreshed every few
// seconds.

import { formatTime, getJson, noteRow, repeat, row } from "./dom.js";

const REFRESH_MS = 5000;
const byId = (id) => document.getElementById(id);

function showRanks(standings) {
  const body = byId("board-body");
  if (!standings.length) {
    body.replaceChildren(noteRow(4, "No accounts yet."));
    return;
  }
  body.replaceChildren(
    ...standings.map(({ rank, account, cash, value }) => row([String(rank), account, cash, value])),
  );
}

function showProblem(status) {
  const box = byId("board-error");
  box.hidden = false;
  box.textContent =
    status === 404
      ? "This server does not publish a leaderboard (start it with --leaderboard)."
      : "The leaderboard could not be loaded; retrying.";
}

async function refresh() {
  const { ok, status, data } = await getJson("/api/leaderboard");
  if (!ok) {
    showProblem(status);
    return;
  }
  byId("board-error").hidden = true;
  showRanks(data);
  byId("board-updated").textContent = `Updated ${formatTime(Date.now() / 1000)}.`;
}

export function startLeaderboard() {
  repeat(refresh, REFRESH_MS);
}
