package minioserver_test

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/stratalog/strata/internal/minioserver"
)

func TestStartRestartStop(t *testing.T) {
	s := minioserver.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	bucket := s.NewBucket(t)
	c, err := s.Client()
	if err != nil {
		t.Fatal(err)
	}
	put := func(key string) {
		t.Helper()
		if _, err := c.PutObject(ctx, bucket, key, bytes.NewReader([]byte(key)), int64(len(key)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	put("a/1")
	put("a/2")
	put("b/1")
	keys, err := s.ObjectKeys(ctx, bucket, "a/")
	if err != nil || !slices.Equal(keys, []string{"a/1", "a/2"}) {
		t.Fatalf("ObjectKeys = %q, %v", keys, err)
	}

	endpoint := s.Endpoint
	s.Stop()
	if s.Running() {
		t.Fatal("running after Stop")
	}
	if _, err := s.ObjectKeys(ctx, bucket, ""); err == nil {
		t.Fatal("listing a stopped server succeeded")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if s.Endpoint != endpoint {
		t.Fatalf("endpoint changed across Restart: %s -> %s", endpoint, s.Endpoint)
	}
	keys, err = s.ObjectKeys(ctx, bucket, "")
	if err != nil || !slices.Equal(keys, []string{"a/1", "a/2", "b/1"}) {
		t.Fatalf("ObjectKeys after Restart = %q, %v", keys, err)
	}
	s.Stop()
	s.Stop() // idempotent
}
