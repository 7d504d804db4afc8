package backend_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalog/strata/internal/minioserver"
	"github.com/stratalog/strata/remotestore"
	"github.com/stratalog/strata/remotestore/backend"
	"github.com/stratalog/strata/remotestore/storetest"
)

// isolateAWS points the AWS chain at nothing but what the test sets: no
// shared files of the machine, no instance metadata, no ambient keys.
func isolateAWS(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"} {
		t.Setenv(k, "")
	}
	return dir
}

// roundTrip puts and reads back an object through the store rawURL opens.
func roundTrip(t *testing.T, rawURL string) error {
	t.Helper()
	s, err := backend.Open(t.Context(), rawURL, backend.Options{NoRetry: true})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if err := s.Put(t.Context(), "k", strings.NewReader("v"), 1); err != nil {
		return err
	}
	storetest.MustGet(t, t.Context(), s, "k", 0, 1)
	return nil
}

// secret_key_file: the secret comes from a file (trailing newline trimmed),
// and it is the file's content that signs: a wrong one is refused.
func TestOpenS3SecretKeyFile(t *testing.T) {
	srv := minioserver.Start(t)
	isolateAWS(t)
	bucket := srv.NewBucket(t)
	dir := t.TempDir()
	good, wrong := filepath.Join(dir, "good"), filepath.Join(dir, "wrong")
	if err := os.WriteFile(good, []byte(srv.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wrong, []byte("not-"+srv.SecretKey), 0o600); err != nil {
		t.Fatal(err)
	}
	url := func(file string) string {
		return fmt.Sprintf("s3://%s/p?endpoint=%s&region=%s&access_key=%s&secret_key_file=%s",
			bucket, srv.Endpoint, minioserver.Region, srv.AccessKey, file)
	}
	if err := roundTrip(t, url(good)); err != nil {
		t.Fatalf("with secret_key_file: %v", err)
	}
	err := roundTrip(t, url(wrong))
	if err == nil || !remotestore.IsPermanent(err) {
		t.Fatalf("a wrong secret in the file: %v; want access refused", err)
	}
	if strings.Contains(err.Error(), srv.SecretKey) {
		t.Fatalf("the error shows a secret: %v", err)
	}
}

// No credentials in the URL: the AWS default chain gives them, from the
// environment or from a profile of the shared credentials file.
func TestOpenS3AWSChain(t *testing.T) {
	srv := minioserver.Start(t)
	bucket := srv.NewBucket(t)
	url := fmt.Sprintf("s3://%s/p?endpoint=%s&region=%s", bucket, srv.Endpoint, minioserver.Region)

	t.Run("environment", func(t *testing.T) {
		isolateAWS(t)
		t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
		if err := roundTrip(t, url); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_SECRET_ACCESS_KEY", "not-"+srv.SecretKey)
		if err := roundTrip(t, url); err == nil || !remotestore.IsPermanent(err) {
			t.Fatalf("a wrong AWS_SECRET_ACCESS_KEY: %v; want access refused", err)
		}
	})
	t.Run("shared credentials file", func(t *testing.T) {
		dir := isolateAWS(t)
		creds := fmt.Sprintf("[strata]\naws_access_key_id = %s\naws_secret_access_key = %s\n", srv.AccessKey, srv.SecretKey)
		if err := os.WriteFile(filepath.Join(dir, "credentials"), []byte(creds), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := roundTrip(t, url+"&profile=strata"); err != nil {
			t.Fatal(err)
		}
	})
}

// Bad secret files are refused when the store is opened, naming the
// parameter and the file; nothing is read from what is not a regular file.
func TestOpenS3SecretFileErrors(t *testing.T) {
	dir := t.TempDir()
	blank := filepath.Join(dir, "blank")
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(blank, []byte(" \n\t"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "s3://bucket-a/p?endpoint=http://127.0.0.1:9&region=us-east-1&access_key=AK"
	for _, c := range []struct{ params, want string }{
		{"&secret_key_file=" + filepath.Join(dir, "missing"), `secret_key_file "` + filepath.Join(dir, "missing") + `": cannot read it`},
		{"&secret_key_file=" + dir, "is a directory"},
		{"&secret_key_file=/dev/zero", "not a regular file"},
		{"&secret_key_file=" + blank, "is empty"},
		{"&secret_key_file=" + big, "larger than"},
		{"&secret_key=S&session_token_file=" + filepath.Join(dir, "missing"), `session_token_file "`},
	} {
		_, err := backend.Open(t.Context(), base+c.params, backend.Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want %q", c.params, err, c.want)
		}
	}
	// Checked without opening anything.
	for _, c := range []struct{ url, want string }{
		{base + "&secret_key=S&secret_key_file=/x", "not both"},
		{"s3://bucket-a?secret_key_file=/x", "both access key and secret key"},
		{"s3://bucket-a?session_token_file=/x", "session token needs an access key"},
		{"s3://bucket-a?access_key=A&secret_key=S&session_token=T&session_token_file=/x", "not both"},
	} {
		_, err := backend.ParseURL(c.url)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want %q", c.url, err, c.want)
		}
	}
}

// Redact hides every secret a URL may carry, wherever it was put, and
// keeps what helps an operator read the error.
func TestRedactHidesSecrets(t *testing.T) {
	const secret = "Qw7SECRETxZ"
	for _, raw := range []string{
		"s3://AK:" + secret + "@bucket-b/p?region=x",
		"s3://bucket-b/p?access_key=A&secret_key=" + secret,
		"s3://bucket-b/p?access_key=A&secret_key=x&session_token=" + secret,
		"s3://bucket-b/p?access_key=A&secretkey=" + secret,     // mistyped name
		"s3://bucket-b/p?access_key=A&Secret_Key=" + secret,    // wrong case
		"s3://bucket-b/p?access_key=A&secret_key:" + secret,    // ':' for '='
		"s3://bucket-b/p?access_key=A&" + secret,               // pasted without a name
		"s3://bucket-b/p?region=a;secret_key=" + secret,        // ';' separator
		"s3://bucket-b/p?endpoint=http://u:" + secret + "@h:9", // endpoint userinfo
		"s3://bucket-b/p?region=x#" + secret,                   // fragment
		"s3://bucket-b/p?access_key=A&secret_key=%zz" + secret, // bad escape
		"s3://bucket-b/p?access_key=A&secret_key=" + secret + "&secret_key=" + secret,
	} {
		got := backend.Redact(raw)
		if strings.Contains(got, secret) {
			t.Errorf("Redact(%q) = %q", raw, got)
		}
		if _, err := backend.ParseURL(raw); err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("ParseURL(%q): %v", raw, err)
		}
	}
	// A parsed Location (its s3.Config) prints without the secrets.
	loc, err := backend.ParseURL("s3://bucket-b/p?access_key=A&secret_key=" + secret + "&session_token=" + secret)
	if err != nil {
		t.Fatal(err)
	}
	if p := fmt.Sprintf("%v %+v %#v %v", loc, loc, loc, loc.S3); strings.Contains(p, secret) {
		t.Errorf("a Location prints its secrets: %s", p)
	}
	const keep = "s3://bucket-b/p?endpoint=http://127.0.0.1:9000&region=eu-west-1&access_key=AK&secret_key_file=/run/secrets/s3"
	if got := backend.Redact(keep); got != keep {
		t.Errorf("Redact(%q) = %q; want it unchanged", keep, got)
	}
	if got := backend.Redact(keep + "&secret_key=S"); got != keep+"&secret_key=xxxxx" {
		t.Errorf("Redact = %q", got)
	}
}
