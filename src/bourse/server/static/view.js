// index.html holds both views of the web page: the market (/, as the HTML
// is written) and the leaderboard (/leaderboard, main#board). This classic
// script runs in the head, so it sets the title at once; as soon as the body
// is parsed (before the first paint, and before app.js runs) it gives every
// table[data-columns] its header row and, on /leaderboard, turns the page
// into the leaderboard. It is the one place that knows which view is which:
// app.js reads the choice from <html data-view>.

(() => {
  const view = location.pathname === "/leaderboard" ? "leaderboard" : "market";
  document.documentElement.dataset.view = view;
  if (view === "leaderboard") document.title = "bourse · leaderboard";

  /** A header row for each table, from its comma-separated data-columns. */
  function addHeads() {
    for (const table of document.querySelectorAll("table[data-columns]")) {
      const row = document.createElement("tr");
      for (const name of table.dataset.columns.split(",")) {
        const cell = document.createElement("th");
        cell.scope = "col";
        cell.textContent = name.trim();
        row.append(cell);
      }
      table.createTHead().append(row);
    }
  }

  /** The leaderboard instead of the market: its main, skip link and nav link;
   * no feed status (the leaderboard has no feed). */
  function showLeaderboard() {
    const byId = (id) => document.getElementById(id);
    for (const id of ["market-view", "market", "status"]) byId(id).hidden = true;
    delete document.body.dataset.feed;
    byId("board").hidden = false;
    const skip = document.querySelector(".skip");
    skip.href = "#board";
    skip.textContent = "Skip to the leaderboard";
    byId("market-link").removeAttribute("aria-current");
    byId("leaderboard-link").setAttribute("aria-current", "page");
    byId("leaderboard-link").hidden = false;
  }

  document.addEventListener("readystatechange", function parsed() {
    if (document.readyState !== "interactive") return;
    document.removeEventListener("readystatechange", parsed);
    addHeads();
    if (view === "leaderboard") showLeaderboard();
  });
})();
