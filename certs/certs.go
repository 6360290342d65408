// Package certs builds the server TLS configuration for hookbay serve and,
// in dev mode, keeps a local CA and a server certificate on disk, so webhook
// senders under test can trust one stable CA across restarts.
package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

const (
	// serverValidity stays at the 825-day ceiling Apple platforms enforce
	// even for certificates issued by a locally trusted CA.
	serverValidity = 825 * 24 * time.Hour
	// renewBefore regenerates the server certificate well before it
	// expires, so a long-running dev setup never serves an expired one.
	renewBefore = 30 * 24 * time.Hour
	// backdate tolerates clock skew between hookbay and the sender.
	backdate = time.Hour
)

// DevFiles holds the paths of the files EnsureDev manages.
type DevFiles struct {
	CA    string // CA certificate (PEM); give this to clients to trust.
	CAKey string // CA private key (PKCS#8 PEM).
	Cert  string // Server certificate (PEM), signed by the CA.
	Key   string // Server private key (PKCS#8 PEM).
}

// EnsureDev makes sure dir holds a development CA and a server certificate
// signed by it that covers hosts, and returns their paths. hosts defaults
// to localhost, 127.0.0.1 and ::1. Valid files are reused unchanged, so
// clients keep trusting the same CA across restarts, and a certificate
// made by "hookbay certs init" for the same hosts is kept; generated
// reports whether any file was (re)written. A missing or unusable CA
// regenerates everything; a missing, expiring, foreign or too narrow
// server certificate is reissued from the existing CA, for hosts and the
// default ones. now is the clock used for validity checks.
func EnsureDev(dir string, hosts []string, now time.Time) (files DevFiles, generated bool, err error) {
	files = devPaths(dir)
	issueFor := defaultHosts
	for _, h := range hosts {
		if !slices.Contains(issueFor, h) {
			issueFor = append(slices.Clone(issueFor), h)
		}
	}
	if len(hosts) == 0 {
		hosts = defaultHosts
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return files, false, fmt.Errorf("create %s: %w", dir, err)
	}

	ca, caKey, err := loadPair(files.CA, files.CAKey)
	if err != nil {
		return files, false, err
	}
	if ca == nil || !ca.IsCA || now.After(ca.NotAfter) {
		if ca, caKey, err = issue(caTemplate(now), nil, nil, files.CA, files.CAKey); err != nil {
			return files, false, err
		}
		generated = true
	}

	leaf, _, err := loadPair(files.Cert, files.Key)
	if err != nil {
		return files, false, err
	}
	if generated || !serverValid(leaf, ca, hosts, now) {
		if _, _, err := issue(serverTemplate(issueFor, now), ca, caKey, files.Cert, files.Key); err != nil {
			return files, false, err
		}
		generated = true
	}
	return files, generated, nil
}

// loadPair reads a certificate and its key. It returns a nil certificate,
// meaning "regenerate", when either file is missing, unparsable or the two
// do not match; only other I/O errors (e.g. permissions) are returned, so a
// CA the user already trusts is never silently replaced because of them.
func loadPair(certPath, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	var pems [2][]byte
	for i, path := range []string{certPath, keyPath} {
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, nil
		} else if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", path, err)
		}
		pems[i] = b
	}
	pair, err := tls.X509KeyPair(pems[0], pems[1])
	if err != nil {
		return nil, nil, nil
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if err != nil || !ok {
		return nil, nil, nil
	}
	return cert, signer, nil
}

// serverValid reports whether leaf chains to ca, covers every host and
// stays valid for at least renewBefore after now.
func serverValid(leaf, ca *x509.Certificate, hosts []string, now time.Time) bool {
	if leaf == nil || now.Add(renewBefore).After(leaf.NotAfter) {
		return false
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return false
	}
	for _, h := range hosts {
		if leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// issue signs tmpl for a fresh P-256 key with parentKey (self-signed when
// parent is nil), writes key and certificate, and returns both.
func issue(tmpl, parent *x509.Certificate, parentKey crypto.Signer, certPath, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	name := tmpl.Subject.CommonName
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key for %s: %w", name, err)
	}
	tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("generate serial for %s: %w", name, err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign %s: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal key for %s: %w", name, err)
	}
	// Key first: a crash between the two writes leaves a mismatched pair,
	// which the next EnsureDev detects and regenerates.
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, nil, err
	}
	if err := writeFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// writeFile replaces path atomically: readers see the old or the new
// content, never a torn file.
func writeFile(path string, data []byte, perm fs.FileMode) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if err = tmp.Chmod(perm); err == nil {
		if _, err = tmp.Write(data); err == nil {
			err = tmp.Sync()
		}
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Options configures Load.
type Options struct {
	// CertFile is a PEM file holding the server certificate, optionally
	// followed by intermediates; the whole chain is served.
	CertFile string
	// KeyFile is the PEM private key matching the first certificate.
	KeyFile string
	// MinVersion is tls.VersionTLS12 (the default) or tls.VersionTLS13.
	MinVersion uint16
	// ClientCAFile, when set, is a PEM bundle of CAs that client
	// certificates are verified against. Clients are asked for a
	// certificate and one that is offered must verify (expired, not yet
	// valid or from another CA fails the handshake); clients without one
	// still connect, and each route decides whether it requires one.
	ClientCAFile string
}

// applyDefaults fills in zero fields.
func (o *Options) applyDefaults() {
	if o.MinVersion == 0 {
		o.MinVersion = tls.VersionTLS12
	}
}

// tls12Suites are the TLS 1.2 cipher suites every server configuration
// allows: forward-secret AEAD suites only (ECDHE with AES-GCM or
// ChaCha20-Poly1305).
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Load returns a server TLS configuration for the key pair in o, offering
// HTTP/2 and HTTP/1.1 via ALPN. For TLS 1.2 it allows only forward-secret
// AEAD suites (ECDHE with AES-GCM or ChaCha20-Poly1305); TLS 1.3 suites are
// not configurable in crypto/tls and are all modern.
func Load(o Options) (*tls.Config, error) {
	o.applyDefaults()
	if o.CertFile == "" || o.KeyFile == "" {
		return nil, errors.New("load TLS key pair: both cert file and key file are required")
	}
	if o.MinVersion != tls.VersionTLS12 && o.MinVersion != tls.VersionTLS13 {
		return nil, fmt.Errorf("load TLS key pair: unsupported MinVersion %#04x: want TLS 1.2 or 1.3", o.MinVersion)
	}
	certPEM, err := os.ReadFile(o.CertFile)
	if err != nil {
		return nil, fmt.Errorf("read cert file: %w", err)
	}
	keyPEM, err := os.ReadFile(o.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load key pair %s and %s: %w", o.CertFile, o.KeyFile, err)
	}
	cfg := &tls.Config{
		MinVersion:   o.MinVersion,
		Certificates: []tls.Certificate{pair},
		NextProtos:   []string{"h2", "http/1.1"},
		CipherSuites: slices.Clone(tls12Suites),
	}
	if o.ClientCAFile != "" {
		pool, err := ReadPool(o.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("client CA file: %w", err)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// ReadPool reads a PEM bundle of CA certificates.
func ReadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// Fingerprint returns the SHA-256 fingerprint of cert as upper-case hex
// pairs joined by colons, the form browsers and openssl display.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	var b strings.Builder
	for i, c := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

// clockSkew is how far ahead of this machine's clock an issuer's may run:
// a certificate that becomes valid within it is served.
const clockSkew = 5 * time.Minute

// CheckServing vets a certificate about to be served: it must be within its
// validity period now (allowing clockSkew before it starts) and cover
// publicHost, when one is set.
func CheckServing(leaf *x509.Certificate, publicHost string, now time.Time) error {
	switch {
	case now.Add(clockSkew).Before(leaf.NotBefore):
		return fmt.Errorf("the certificate is not valid until %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	case now.After(leaf.NotAfter):
		return fmt.Errorf("the certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if publicHost != "" {
		if err := leaf.VerifyHostname(publicHost); err != nil {
			return fmt.Errorf("the certificate does not cover server.public_host %s: %w", publicHost, err)
		}
	}
	return nil
}
