// A dev-mode banner link carries the token in the URL's fragment, which
// never leaves the browser: fill it in, forget it, and log in.
(function () {
  var m = /^#token=(.+)$/.exec(location.hash);
  if (!m) return;
  history.replaceState(null, "", location.pathname + location.search);
  document.getElementById("token").value = decodeURIComponent(m[1]);
  document.getElementById("login").submit();
})();
