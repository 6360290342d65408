package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Reloader serves a certificate pair from files and switches new
// handshakes to a new pair when the files change or Reload is called
// (SIGHUP). Open connections keep the certificate they were made with. A
// broken new pair is refused and the old one stays.
type Reloader struct {
	// Check, when set, vets a new pair's certificate before it is served,
	// as start-up vets the first: a pair it refuses is not taken.
	Check func(leaf *x509.Certificate) error

	certFile, keyFile string
	mu                sync.RWMutex
	cur               *tls.Certificate
	stamp             string // size and mtime of both files, to notice changes
}

// NewReloader loads the pair once.
func NewReloader(certFile, keyFile string) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads the files again; on error the current pair stays.
func (r *Reloader) Reload() error {
	_, err := r.reload()
	return err
}

// reload loads the pair and returns the files' stamp taken before reading
// them: if they change while being read, the next check sees it.
func (r *Reloader) reload() (string, error) {
	stamp := r.fileStamp()
	pair, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return stamp, fmt.Errorf("load key pair %s and %s: %w", r.certFile, r.keyFile, err)
	}
	if pair.Leaf == nil && len(pair.Certificate) > 0 {
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return stamp, fmt.Errorf("parse %s: %w", r.certFile, err)
		}
	}
	if r.Check != nil {
		if err := r.Check(pair.Leaf); err != nil {
			return stamp, fmt.Errorf("%s: %w", r.certFile, err)
		}
	}
	r.mu.Lock()
	r.cur, r.stamp = &pair, stamp
	r.mu.Unlock()
	return stamp, nil
}

// Leaf is the certificate served now.
func (r *Reloader) Leaf() *x509.Certificate {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.cur.Leaf
}

// GetCertificate is tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.cur, nil
}

func (r *Reloader) fileStamp() string {
	var s string
	for _, f := range []string{r.certFile, r.keyFile} {
		if fi, err := os.Stat(f); err == nil {
			s += fmt.Sprintf("%d/%d;", fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return s
}

// Watch reloads the pair when its files change, checking every interval,
// until ctx ends. A failed reload is logged and the old pair stays.
func (r *Reloader) Watch(ctx context.Context, interval time.Duration, logger *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.RLock()
		changed := r.fileStamp() != r.stamp
		r.mu.RUnlock()
		if !changed {
			continue
		}
		if stamp, err := r.reload(); err != nil {
			logger.Error("certificate files changed but the new pair was refused; still serving the old one", "err", err)
			r.mu.Lock()
			r.stamp = stamp // retry once the files change again (a second rename)
			r.mu.Unlock()
			continue
		}
		logger.Info("certificate reloaded", "subject", r.Leaf().Subject.String(), "not_after", r.Leaf().NotAfter)
	}
}
