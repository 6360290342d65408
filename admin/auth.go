package admin

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// SessionCookie is the name of the inspector's session cookie.
const SessionCookie = "hookbay_admin"

// sessionTTL is how long a login lasts.
const sessionTTL = 12 * time.Hour

// sessionKey derives the key that signs session cookies from the token:
// sessions survive a restart and work on every replica with the same
// token, and changing the token ends them all.
func sessionKey(token string) []byte {
	sum := sha256.Sum256([]byte("hookbay admin session\x00" + token))
	return sum[:]
}

// newSession returns a cookie value valid until exp: the expiry and its
// MAC.
func (s *Server) newSession(exp time.Time) string {
	buf := binary.BigEndian.AppendUint64(nil, uint64(exp.Unix()))
	mac := hmac.New(sha256.New, s.key)
	mac.Write(buf)
	return base64.RawURLEncoding.EncodeToString(mac.Sum(buf))
}

// validSession reports whether a cookie value is one newSession made and
// has not expired.
func (s *Server) validSession(v string, now time.Time) bool {
	buf, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(buf) != 8+sha256.Size {
		return false
	}
	mac := hmac.New(sha256.New, s.key)
	mac.Write(buf[:8])
	if !hmac.Equal(mac.Sum(nil), buf[8:]) {
		return false
	}
	return now.Unix() < int64(binary.BigEndian.Uint64(buf[:8]))
}

// tokenMatches compares a presented token with the configured one in
// constant time (of the digests: the length is not revealed either).
func (s *Server) tokenMatches(presented string) bool {
	a, b := sha256.Sum256([]byte(presented)), sha256.Sum256([]byte(s.opts.Token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// crossOrigin refuses state-changing requests a browser sends from
// another origin (Sec-Fetch-Site, else Origin against Host). Requests
// without either header are not from a browser and pass: a CSRF needs a
// browser.
var crossOrigin = http.NewCrossOriginProtection()

// secure authenticates every request but the login page and the static
// assets, and refuses cross-site state changes:
//
//   - with a token configured: "Authorization: Bearer <token>" or a valid
//     session cookie; a browser asking for a page is sent to /login.
//   - without one (loopback only, as config requires): open, but only to
//     requests naming a loopback host, so that a page on another site
//     cannot reach the API by DNS rebinding.
//
// State-changing calls made with the cookie, or without any credential,
// must come from the inspector's own origin; the cookie is SameSite=Strict
// as well.
func (s *Server) secure(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		path := r.URL.Path
		c.Response().Header().Set("X-Content-Type-Options", "nosniff")
		c.Response().Header().Set("Referrer-Policy", "no-referrer")
		if strings.HasPrefix(path, "/static/") {
			return next(c)
		}
		bearer := false
		if s.opts.Token == "" {
			if !loopbackHost(r.Host) {
				return errorf(http.StatusForbidden, "the admin listener has no token, so it serves only requests for a loopback host (Host %q): set admin.token to reach it by another name", r.Host)
			}
		} else if path != "/login" {
			if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
				if !s.tokenMatches(strings.TrimSpace(v)) {
					return errorf(http.StatusUnauthorized, "wrong token")
				}
				bearer = true
			} else if ck, err := r.Cookie(SessionCookie); err != nil || !s.validSession(ck.Value, s.opts.Now()) {
				if wantsPage(r) {
					return c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(r.URL.RequestURI()))
				}
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="hookbay admin"`)
				return errorf(http.StatusUnauthorized, "a token is required: send Authorization: Bearer <admin.token>, or log in at /login")
			}
		}
		if !bearer {
			if err := crossOrigin.Check(r); err != nil {
				return errorf(http.StatusForbidden, "cross-site request refused: state changes come only from the inspector's own pages, or with Authorization: Bearer")
			}
		}
		return next(c)
	}
}

// wantsPage reports whether a request is a browser navigating to a page,
// which is sent to the login page rather than answered 401.
func wantsPage(r *http.Request) bool {
	return r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/api/") &&
		strings.Contains(r.Header.Get("Accept"), "text/html")
}

// loopbackHost reports whether a Host header names this machine's loopback:
// localhost (or a name under it), or a loopback address.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// safeNext is where to go after logging in: a path on this server, never
// another site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

func (s *Server) setSession(c echo.Context, value string, exp time.Time) {
	ck := &http.Cookie{Name: SessionCookie, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: c.Request().TLS != nil}
	if value == "" {
		ck.MaxAge = -1
	} else {
		ck.Expires = exp
	}
	c.SetCookie(ck)
}
