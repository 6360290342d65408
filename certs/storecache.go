package certs

import (
	"context"
	"fmt"

	"golang.org/x/crypto/acme/autocert"
)

// CacheStore is a store that keeps the ACME cache's entries, such as a
// database several replicas share, so that they serve one certificate and
// a replica does not order what another one obtained.
type CacheStore interface {
	// CacheGet returns the entry stored under key, or an error for which
	// the notFound function given to NewStoreCache is true.
	CacheGet(ctx context.Context, key string) ([]byte, error)
	// CachePut stores data under key, replacing what was there.
	CachePut(ctx context.Context, key string, data []byte) error
	// CacheDelete removes the entry under key; a missing one is no error.
	CacheDelete(ctx context.Context, key string) error
}

// NewStoreCache returns an autocert.Cache keeping its entries in s.
// notFound says whether an error of s.CacheGet means there is no entry:
// that is answered with autocert.ErrCacheMiss itself, unwrapped, since
// autocert compares with ==, and a miss wrapped would fail every first
// start instead of ordering a certificate.
func NewStoreCache(s CacheStore, notFound func(error) bool) autocert.Cache {
	return storeCache{s: s, notFound: notFound}
}

type storeCache struct {
	s        CacheStore
	notFound func(error) bool
}

// Get implements autocert.Cache.
func (c storeCache) Get(ctx context.Context, key string) ([]byte, error) {
	data, err := c.s.CacheGet(ctx, key)
	if err != nil {
		if c.notFound(err) {
			return nil, autocert.ErrCacheMiss
		}
		return nil, fmt.Errorf("ACME cache: %w", err)
	}
	return data, nil
}

// Put implements autocert.Cache.
func (c storeCache) Put(ctx context.Context, key string, data []byte) error {
	if err := c.s.CachePut(ctx, key, data); err != nil {
		return fmt.Errorf("ACME cache: %w", err)
	}
	return nil
}

// Delete implements autocert.Cache.
func (c storeCache) Delete(ctx context.Context, key string) error {
	if err := c.s.CacheDelete(ctx, key); err != nil {
		return fmt.Errorf("ACME cache: %w", err)
	}
	return nil
}
