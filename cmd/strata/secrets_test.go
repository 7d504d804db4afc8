package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A remote.storage.url that stops start-up (it does not parse, a parameter
// name is mistyped) is reported without the secret it carries: neither the
// error `strata serve` or `strata tier ...` prints nor their output shows it.
func TestServeErrorsHideStoreSecret(t *testing.T) {
	const secret = "Zq8SECRETxMARKER"
	dir := t.TempDir()
	urls := []struct {
		url  string
		want []string // the error still says what is wrong
	}{
		// url.Parse refuses the bad escape: the config check fails.
		{"s3://AKID:" + secret + "%zz@bucket-a/p", []string{"remote.storage.url"}},
		{"s3://bucket a/p?secret_key=" + secret, []string{"remote.storage.url"}},
		// A mistyped parameter name: the value may be a secret.
		{"s3://bucket-a/p?endpoint=http://127.0.0.1:9&access_key=AKID&secretkey=" + secret, []string{"remote.storage.url", "secretkey"}},
		{"s3://bucket-a/p?endpoint=http://127.0.0.1:9&access_key=AKID&Secret_Key=" + secret, []string{"remote.storage.url", "Secret_Key"}},
		// A secret where it does not belong.
		{"file:///tmp/x?secret_key=" + secret, []string{"remote.storage.url"}},
	}
	for _, c := range urls {
		for _, cmd := range [][]string{{"serve"}, {"tier", "recover"}, {"tier", "reconcile", "--dry-run"}, {"tier", "ls"}} {
			var out bytes.Buffer
			args := append(cmd, "--set", "log.dirs="+dir, "--set", "listeners=PLAINTEXT://127.0.0.1:0", "--set", "remote.storage.url="+c.url)
			err := run(args, &out, &out)
			if cmd[0] == "tier" && cmd[1] == "ls" {
				// ls reads meta.db only: it may succeed; it must not
				// print the secret either way.
				if strings.Contains(out.String(), secret) || (err != nil && strings.Contains(err.Error(), secret)) {
					t.Errorf("%v %q: the output shows the secret:\nerror: %v\noutput: %s", cmd, c.url, err, out.String())
				}
				continue
			}
			if err == nil {
				t.Fatalf("%v %q: no error", cmd, c.url)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(out.String(), secret) {
				t.Errorf("%v %q: the output shows the secret:\nerror: %v\noutput: %s", cmd, c.url, err, out.String())
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v %q: error %q does not mention %q", cmd, c.url, err, w)
				}
			}
		}
	}
}

// A secret_key_file that cannot be read stops start-up with an error naming
// the key, the parameter and the file; so does the tier command.
func TestSecretKeyFileUnreadable(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "no-such-secret")
	empty := filepath.Join(dir, "blank-secret")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		file string
		why  string
	}{
		{missing, "no such file"},
		{empty, "empty"},
		{dir, "directory"},
	} {
		url := "s3://bucket-a/p?endpoint=http://127.0.0.1:9&region=us-east-1&access_key=AKID&secret_key_file=" + c.file
		for _, cmd := range [][]string{{"serve"}, {"tier", "recover"}} {
			var out bytes.Buffer
			args := append(cmd, "--set", "log.dirs="+filepath.Join(dir, "data"), "--set", "listeners=PLAINTEXT://127.0.0.1:0", "--set", "remote.storage.url="+url)
			err := run(args, &out, &out)
			if err == nil {
				t.Fatalf("%v with secret_key_file=%s: no error", cmd, c.file)
			}
			for _, w := range []string{"remote.storage.url", "secret_key_file", c.file, c.why} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v: error %q does not mention %q", cmd, err, w)
				}
			}
		}
	}
}
