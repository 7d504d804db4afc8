package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const testSecret = "Kx9SECRETxVALUEq"

// A sensitive key, from any source, is described as Kafka describes a
// password and never printed: not by DescribeBroker, fmt, slog or an error.
func TestSensitiveKeys(t *testing.T) {
	url := "s3://AKID:" + testSecret + "@bucket/p?secret_key=" + testSecret
	props := filepath.Join(t.TempDir(), "server.properties")
	if err := os.WriteFile(props, []byte("remote.storage.url="+url+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, load := range map[string]func() (*Broker, error){
		"set":         func() (*Broker, error) { return Load("", nil, []string{"remote.storage.url=" + url}) },
		"properties":  func() (*Broker, error) { return Load(props, nil, nil) },
		"environment": func() (*Broker, error) { return Load("", []string{"STRATA_REMOTE_STORAGE_URL=" + url}, nil) },
	} {
		b, err := load()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b.RemoteStorageURL != url {
			t.Fatalf("%s: RemoteStorageURL = %q, want the URL as given", name, b.RemoteStorageURL)
		}
		found := false
		for _, e := range b.DescribeBroker() {
			if e.Name == "remote.storage.url" {
				found = true
				if !e.Sensitive || e.Value != "" || e.Source != SourceStaticBroker {
					t.Errorf("%s: entry %+v; want sensitive, empty value, static broker source", name, e)
				}
			}
		}
		if !found {
			t.Fatalf("%s: remote.storage.url not described", name)
		}
		var log bytes.Buffer
		slog.New(slog.NewTextHandler(&log, nil)).Info("config", "cfg", b)
		printed := fmt.Sprint(b) + fmt.Sprintf("%v %+v %#v", b, b, b) + log.String()
		if strings.Contains(printed, testSecret) {
			t.Errorf("%s: the secret is printed: %s", name, printed)
		}
		if !strings.Contains(log.String(), "remote.storage.url=[hidden]") {
			t.Errorf("%s: the log does not show the key as hidden: %s", name, log.String())
		}
	}
}

// A sensitive value that does not validate is refused without quoting it.
func TestSensitiveValueErrors(t *testing.T) {
	for _, bad := range []string{
		"s3://AKID:" + testSecret + "%zz@bucket",
		"s3://bucket x/?secret_key=" + testSecret,
		"  " + testSecret + " ",
	} {
		_, err := Load("", nil, []string{"remote.storage.url=" + bad})
		if err == nil {
			t.Fatalf("%q accepted", bad)
		}
		if strings.Contains(err.Error(), testSecret) || strings.Contains(fmt.Sprintf("%+v", err), testSecret) {
			t.Errorf("error shows the secret: %v (%+v)", err, err)
		}
		if !strings.Contains(err.Error(), "remote.storage.url") || !strings.Contains(err.Error(), "not a URL with a scheme") {
			t.Errorf("error does not say what is wrong: %v", err)
		}
	}
}

// A value given without its key (or with a space for '=') is not quoted
// back: it may be the secret.
func TestValueWithoutKeyNotQuoted(t *testing.T) {
	url := "s3://AKID:" + testSecret + "@bucket/p?region=x"
	for _, set := range []string{url, "remote.storage.url " + "s3://AKID:" + testSecret + "@bucket/p"} {
		_, err := Load("", nil, []string{set})
		if err == nil {
			t.Fatalf("%q accepted", set)
		}
		if strings.Contains(err.Error(), testSecret) {
			t.Errorf("--set %q: error shows the secret: %v", set, err)
		}
	}
	props := filepath.Join(t.TempDir(), "server.properties")
	if err := os.WriteFile(props, []byte(url+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(props, nil, nil); err == nil || strings.Contains(err.Error(), testSecret) {
		t.Errorf("properties line without a key: %v", err)
	}
	// A mistyped key is still named.
	if _, err := Load("", nil, []string{"remote.storage.ur=x"}); err == nil || !strings.Contains(err.Error(), `"remote.storage.ur"`) {
		t.Errorf("mistyped key: %v", err)
	}
}

// Keys named like secrets must be marked sensitive (spec.secret()), so a
// key added later cannot leak through DescribeConfigs or the logs.
func TestSecretLookingKeysAreSensitive(t *testing.T) {
	re := regexp.MustCompile(`password|secret|token|credential|\.url$`)
	for _, s := range brokerSpecs {
		if re.MatchString(s.name) && !s.sensitive {
			t.Errorf("%s looks like a secret but is not marked sensitive", s.name)
		}
	}
}
