/**
 * The status page's document. It carries no data: without the API key a visitor sees only
 * the key prompt, and everything else is fetched by page/script.ts with the key. No inline
 * script or style (the Content-Security-Policy forbids both), no third-party request; the
 * icon is an empty data: URL so that the browser does not ask for /favicon.ico.
 */
export const PAGE_HTML = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="referrer" content="no-referrer">
<title>Backups · sqlite-edge-backup</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="page/app.css">
<script src="page/app.js" defer></script>
</head>
<body>
<header class="top">
  <h1>SQLite backups</h1>
  <button type="button" id="forget" class="quiet" hidden>Forget key</button>
</header>
<main id="main">
  <form id="login" class="card login" autocomplete="off" hidden>
    <h2>API key</h2>
    <p>This page shows the backups of this server. Enter its API key (<code>API_KEY</code>); it is kept for this tab only.</p>
    <label for="key">API key</label>
    <div class="row">
      <input id="key" name="key" type="password" required spellcheck="false" autocapitalize="off">
      <button type="submit" class="primary">Open</button>
    </div>
    <p id="login-error" class="error" role="alert"></p>
  </form>
  <p id="loading" class="muted">Loading…</p>
  <div id="dashboard" hidden></div>
  <noscript><p class="error">This page needs JavaScript. The API works without it: GET /status, GET /backups.</p></noscript>
</main>
</body>
</html>
`;
