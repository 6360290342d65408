package certs

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

const (
	// ClientCN is the subject CN of the client certificate Init issues.
	ClientCN = "hookbay-client"
	// DefaultClientDays is how long client certificates stay valid unless
	// IssueClient is told otherwise.
	DefaultClientDays = 365
	// ExpiryWarning is how close to its end Describe flags a certificate
	// as expiring: the same window in which EnsureDev renews its own.
	ExpiryWarning = renewBefore
)

// defaultHosts are the names a development server certificate covers.
var defaultHosts = []string{"localhost", "127.0.0.1", "::1"}

// Files holds the paths Init writes: the CA and server pair that EnsureDev
// also manages, plus a client pair for mTLS.
type Files struct {
	DevFiles
	ClientCert string // Client certificate (PEM), CN ClientCN.
	ClientKey  string // Client private key (PKCS#8 PEM, unencrypted).
}

// Paths returns every path in f, each certificate before its key.
func (f Files) Paths() []string {
	return []string{f.CA, f.CAKey, f.Cert, f.Key, f.ClientCert, f.ClientKey}
}

// devPaths returns the file names EnsureDev and Init share in dir.
func devPaths(dir string) DevFiles {
	return DevFiles{
		CA:    filepath.Join(dir, "ca.pem"),
		CAKey: filepath.Join(dir, "ca-key.pem"),
		Cert:  filepath.Join(dir, "server.pem"),
		Key:   filepath.Join(dir, "server-key.pem"),
	}
}

// caTemplate is a ten-year CA that may sign leaf certificates only.
func caTemplate(now time.Time) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: "hookbay development CA"},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(-backdate).AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
}

// serverTemplate is a server certificate for hosts, each an IP address
// (optionally in brackets) or a DNS name.
func serverTemplate(hosts []string, now time.Time) *x509.Certificate {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "hookbay dev server"},
		NotBefore:   now.Add(-backdate),
		NotAfter:    now.Add(-backdate).Add(serverValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return tmpl
}

// clientTemplate is a client-authentication certificate for cn.
func clientTemplate(cn string, now, notAfter time.Time) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		NotBefore:   now.Add(-backdate),
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

// refuseExisting returns an error wrapping fs.ErrExist and naming the first
// of paths that exists, so nothing is written over a file the user may
// already have handed out.
func refuseExisting(paths ...string) error {
	for _, p := range paths {
		_, err := os.Lstat(p)
		if err == nil {
			return &fs.PathError{Op: "create", Path: p, Err: fs.ErrExist}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Init writes a new CA, a server certificate for hosts (default localhost,
// 127.0.0.1 and ::1) and a client certificate with CN ClientCN into dir,
// all unencrypted PEM with keys readable by the owner only. Unless force is
// set, it writes nothing when any of the six files exists and returns an
// error wrapping fs.ErrExist that names it. The CA and server files are
// the ones EnsureDev uses, so "hookbay serve" in dev mode accepts them.
func Init(dir string, hosts []string, force bool, now time.Time) (Files, error) {
	d := devPaths(dir)
	files := Files{
		DevFiles:   d,
		ClientCert: filepath.Join(dir, "client.pem"),
		ClientKey:  filepath.Join(dir, "client-key.pem"),
	}
	if len(hosts) == 0 {
		hosts = defaultHosts
	}
	for _, h := range hosts {
		if err := CheckHost(h); err != nil {
			return files, fmt.Errorf("init certs: %w", err)
		}
	}
	if !force {
		if err := refuseExisting(files.Paths()...); err != nil {
			return files, fmt.Errorf("init certs: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return files, fmt.Errorf("create %s: %w", dir, err)
	}
	ca, caKey, err := issue(caTemplate(now), nil, nil, files.CA, files.CAKey)
	if err != nil {
		return files, err
	}
	if _, _, err := issue(serverTemplate(hosts, now), ca, caKey, files.Cert, files.Key); err != nil {
		return files, err
	}
	tmpl := clientTemplate(ClientCN, now, now.AddDate(0, 0, DefaultClientDays))
	if _, _, err := issue(tmpl, ca, caKey, files.ClientCert, files.ClientKey); err != nil {
		return files, err
	}
	return files, nil
}

// clientName is what IssueClient accepts as a CN, since the CN is also the
// file name: no path separators, no leading dot, and at most the 64
// characters RFC 5280 allows in a CN.
var clientName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// IssueClient writes a client certificate with subject CN cn, valid for
// days from now (never beyond the CA's own expiry), and its key to
// dir/cn.pem and dir/cn-key.pem, signed by the CA in dir/ca.pem and
// dir/ca-key.pem. cn must be a plain file name that cannot collide with
// the CA or server files. Unless force is set, it refuses, with an error
// wrapping fs.ErrExist, to replace either file; a missing CA file gives an
// error wrapping fs.ErrNotExist.
func IssueClient(dir, cn string, days int, force bool, now time.Time) (certPath, keyPath string, err error) {
	if !clientName.MatchString(cn) {
		return "", "", fmt.Errorf("issue client certificate: CN %q is not a safe file name (letters, digits, '.', '_', '-'; 64 at most; no leading '.' or '-')", cn)
	}
	if cn == "ca" || cn == "server" || strings.HasSuffix(cn, "-key") {
		return "", "", fmt.Errorf("issue client certificate: CN %q would overwrite CA, server or key files", cn)
	}
	if days < 1 {
		return "", "", fmt.Errorf("issue client certificate: days = %d, want at least 1", days)
	}
	certPath, keyPath = filepath.Join(dir, cn+".pem"), filepath.Join(dir, cn+"-key.pem")
	if !force {
		if err := refuseExisting(certPath, keyPath); err != nil {
			return "", "", fmt.Errorf("issue client certificate: %w", err)
		}
	}

	d := devPaths(dir)
	ca, caKey, err := loadPair(d.CA, d.CAKey)
	if err != nil {
		return "", "", fmt.Errorf("load CA: %w", err)
	}
	if ca == nil {
		// loadPair does not say why; a missing file is the likely reason.
		for _, p := range []string{d.CA, d.CAKey} {
			if _, err := os.Stat(p); err != nil {
				return "", "", fmt.Errorf("load CA: %w", err)
			}
		}
		return "", "", fmt.Errorf("load CA: %s and %s are not a matching certificate and key", d.CA, d.CAKey)
	}
	if !ca.IsCA {
		return "", "", fmt.Errorf("load CA: %s is not a CA certificate", d.CA)
	}
	if !now.Before(ca.NotAfter) {
		return "", "", fmt.Errorf("load CA: %s expired on %s", d.CA, ca.NotAfter.UTC().Format(time.RFC3339))
	}
	notAfter := now.AddDate(0, 0, days)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter // a client certificate cannot outlive its CA
	}
	if _, _, err := issue(clientTemplate(cn, now, notAfter), ca, caKey, certPath, keyPath); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

// Status values of CertInfo.
const (
	StatusValid       = "valid"
	StatusExpiring    = "expiring" // valid, but for less than ExpiryWarning
	StatusExpired     = "expired"
	StatusNotYetValid = "not yet valid"
)

// CertInfo summarises one certificate for "hookbay certs show".
type CertInfo struct {
	Subject     string    `json:"subject"`
	Issuer      string    `json:"issuer"`
	DNSNames    []string  `json:"dns_names,omitempty"`
	IPAddresses []string  `json:"ip_addresses,omitempty"`
	URIs        []string  `json:"uris,omitempty"`
	Emails      []string  `json:"emails,omitempty"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	// Usage lists "CA", "server" and "client" as they apply.
	Usage []string `json:"usage"`
	// Fingerprint is the SHA-256 fingerprint, as Fingerprint returns it.
	Fingerprint string `json:"sha256_fingerprint"`
	// Status is one of StatusValid, StatusExpiring, StatusExpired and
	// StatusNotYetValid.
	Status string `json:"status"`
	// DaysLeft is the number of days until NotAfter, rounded up; zero or
	// negative once expired.
	DaysLeft int `json:"days_left"`
}

// Describe returns a CertInfo for each CERTIFICATE block in pemBytes, in
// order, judging validity at now. Other blocks, such as keys, are skipped;
// no certificate at all is an error.
func Describe(pemBytes []byte, now time.Time) ([]CertInfo, error) {
	var infos []CertInfo
	for rest := pemBytes; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate %d: %w", len(infos)+1, err)
		}
		infos = append(infos, describe(cert, now))
	}
	if len(infos) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return infos, nil
}

func describe(cert *x509.Certificate, now time.Time) CertInfo {
	info := CertInfo{
		Subject:     cert.Subject.String(),
		Issuer:      cert.Issuer.String(),
		DNSNames:    cert.DNSNames,
		Emails:      cert.EmailAddresses,
		NotBefore:   cert.NotBefore,
		NotAfter:    cert.NotAfter,
		Usage:       usage(cert),
		Fingerprint: Fingerprint(cert),
		DaysLeft:    int(math.Ceil(cert.NotAfter.Sub(now).Hours() / 24)),
	}
	for _, ip := range cert.IPAddresses {
		info.IPAddresses = append(info.IPAddresses, ip.String())
	}
	for _, u := range cert.URIs {
		info.URIs = append(info.URIs, u.String())
	}
	switch {
	case now.Before(cert.NotBefore):
		info.Status = StatusNotYetValid
	case now.After(cert.NotAfter):
		info.Status = StatusExpired
	case cert.NotAfter.Sub(now) < ExpiryWarning:
		info.Status = StatusExpiring
	default:
		info.Status = StatusValid
	}
	return info
}

// usage summarises what cert may be used for. A leaf without an extended
// key usage extension is accepted by crypto/tls for both ends, so it counts
// as server and client.
func usage(cert *x509.Certificate) []string {
	var server, client bool
	for _, u := range cert.ExtKeyUsage {
		server = server || u == x509.ExtKeyUsageServerAuth || u == x509.ExtKeyUsageAny
		client = client || u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny
	}
	if !cert.IsCA && len(cert.ExtKeyUsage) == 0 && len(cert.UnknownExtKeyUsage) == 0 {
		server, client = true, true
	}
	out := []string{}
	if cert.IsCA {
		out = append(out, "CA")
	}
	if server {
		out = append(out, "server")
	}
	if client {
		out = append(out, "client")
	}
	return out
}

// CheckHost refuses what cannot be a certificate's host name: an empty
// one, one with a scheme, port, path or spaces ("localhost:8443",
// "https://hooks.example.com"). IP addresses, bracketed IPv6 ones and
// wildcard names pass.
func CheckHost(h string) error {
	switch {
	case strings.TrimSpace(h) == "":
		return errors.New("empty host name")
	case net.ParseIP(strings.Trim(h, "[]")) != nil:
		return nil
	case strings.ContainsAny(h, ":/ \t@?#"):
		return fmt.Errorf("host %q: want a name or an IP address, without a scheme, port or path", h)
	}
	return nil
}
