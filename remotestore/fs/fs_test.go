package fs_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stratalog/strata/remotestore"
	"github.com/stratalog/strata/remotestore/fs"
	"github.com/stratalog/strata/remotestore/storetest"
)

func newStore(t *testing.T) *fs.Store {
	t.Helper()
	s, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAcceptance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) remotestore.Store { return newStore(t) })
}

func TestLayoutAndTempFiles(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	storetest.MustPut(t, ctx, s, "a/b/c.log", []byte("data"))
	b, err := os.ReadFile(filepath.Join(s.Root(), "a", "b", "c.log"))
	if err != nil || string(b) != "data" {
		t.Fatalf("object file: %q, %v", b, err)
	}
	// A leftover temporary file, as a crash mid-Put leaves, is never listed,
	// and its name cannot be used as a key.
	if err := os.WriteFile(filepath.Join(s.Root(), ".strata-tmp", "put-123"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	keys, err := storetest.Keys(ctx, s, "")
	if err != nil || !slices.Equal(keys, []string{"a/b/c.log"}) {
		t.Fatalf("List = %q, %v", keys, err)
	}
	if _, err := s.Head(ctx, ".strata-tmp/put-123"); !errors.Is(err, remotestore.ErrInvalidKey) {
		t.Fatalf("Head of a temp file: %v, want ErrInvalidKey", err)
	}
	// A failed Put leaves no temporary file behind.
	if err := s.Put(ctx, "x", bytes.NewReader([]byte("short")), 100); err == nil {
		t.Fatal("short Put succeeded")
	}
	ents, _ := os.ReadDir(filepath.Join(s.Root(), ".strata-tmp"))
	if len(ents) != 1 {
		t.Fatalf("temp dir holds %d files after a failed Put, want only the planted one", len(ents))
	}
	// Deleting the last key of a directory removes the empty directories.
	if err := s.Delete(ctx, "a/b/c.log"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Root(), "a")); !os.IsNotExist(err) {
		t.Fatalf("empty directory left after Delete: %v", err)
	}
}

func TestStaleTempFilesRemovedOnOpen(t *testing.T) {
	dir := t.TempDir()
	s, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(s.Root(), ".strata-tmp")
	old, fresh := filepath.Join(tmp, "put-old"), filepath.Join(tmp, "put-fresh")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.New(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("stale temp file kept: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temp file removed (it may belong to a Put in flight): %v", err)
	}
}

func TestKeyCannotEscapeRoot(t *testing.T) {
	parent := t.TempDir()
	s, err := fs.New(filepath.Join(parent, "root"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, key := range []string{"../escape", "a/../../escape", "/etc/escape"} {
		if err := s.Put(ctx, key, bytes.NewReader([]byte("x")), 1); !errors.Is(err, remotestore.ErrInvalidKey) {
			t.Errorf("Put(%q): %v, want ErrInvalidKey", key, err)
		}
	}
	if _, err := os.Stat(filepath.Join(parent, "escape")); !os.IsNotExist(err) {
		t.Fatalf("a file escaped the root: %v", err)
	}
}

func TestFileAndDirectoryConflict(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	storetest.MustPut(t, ctx, s, "a/b", []byte("x"))
	if err := s.Put(ctx, "a", bytes.NewReader([]byte("y")), 1); err == nil {
		t.Error(`Put("a") over directory "a/" succeeded`)
	}
	if err := s.Put(ctx, "a/b/c", bytes.NewReader([]byte("y")), 1); err == nil {
		t.Error(`Put("a/b/c") under object "a/b" succeeded`)
	}
	if err := s.Delete(ctx, "a"); err != nil {
		t.Errorf(`Delete("a") of a directory: %v, want nil`, err)
	}
	if got := storetest.MustGet(t, ctx, s, "a/b", 0, -1); string(got) != "x" {
		t.Errorf("a/b = %q", got)
	}
}
