package qa

import (
	"crypto/x509"
	"fmt"
)

// systemPoolWith returns the system roots plus the CAs in pem.
func systemPoolWith(pem []byte) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file holds no PEM certificate")
	}
	return pool, nil
}
