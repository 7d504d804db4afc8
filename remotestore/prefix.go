package remotestore

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// WithPrefix returns a Store that keeps every key of s under prefix: Put(k)
// writes prefix+"/"+k, and List reports keys with the prefix removed. Leading
// and trailing slashes of prefix are ignored; an empty prefix returns s.
func WithPrefix(s Store, prefix string) (Store, error) {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return s, nil
	}
	// A prefix is a key's leading segments, so it obeys the key rules.
	if err := ValidateKey(prefix); err != nil {
		return nil, fmt.Errorf("remotestore: prefix: %w", err)
	}
	return &prefixed{s: s, prefix: prefix + "/"}, nil
}

type prefixed struct {
	s      Store
	prefix string // ends with '/'
}

var _ Store = (*prefixed)(nil)

func (p *prefixed) key(k string) (string, error) {
	if err := ValidateKey(k); err != nil {
		return "", err
	}
	return p.prefix + k, nil
}

func (p *prefixed) Put(ctx context.Context, key string, r io.ReadSeeker, size int64) error {
	k, err := p.key(key)
	if err != nil {
		return err
	}
	return p.s.Put(ctx, k, r, size)
}

func (p *prefixed) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	k, err := p.key(key)
	if err != nil {
		return nil, err
	}
	return p.s.GetRange(ctx, k, off, length)
}

func (p *prefixed) Head(ctx context.Context, key string) (ObjectInfo, error) {
	k, err := p.key(key)
	if err != nil {
		return ObjectInfo{}, err
	}
	info, err := p.s.Head(ctx, k)
	info.Key = strings.TrimPrefix(info.Key, p.prefix)
	return info, err
}

func (p *prefixed) Delete(ctx context.Context, key string) error {
	k, err := p.key(key)
	if err != nil {
		return err
	}
	return p.s.Delete(ctx, k)
}

func (p *prefixed) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	return p.s.List(ctx, p.prefix+prefix, func(info ObjectInfo) error {
		info.Key = strings.TrimPrefix(info.Key, p.prefix)
		return fn(info)
	})
}

// Unwrap returns the decorated store.
func (p *prefixed) Unwrap() Store { return p.s }
