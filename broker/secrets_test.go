package broker

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/config"
	"github.com/stratalog/strata/internal/wait"
)

// storeSecret is the S3 secret the tests configure. It needs no escaping in a
// URL, so its bytes are the same raw and encoded.
const storeSecret = "Tr0ub4dor3xSECRETxK3Y"

// secretURLs are remote.storage.url values carrying storeSecret in each form
// the remotestore accepts. The endpoint is never contacted: opening an s3
// store sends no request, and no topic exists to tier.
var secretURLs = map[string]string{
	"query":    "s3://bucket-a/prefix?endpoint=http://127.0.0.1:9&region=us-east-1&access_key=AKID&secret_key=" + storeSecret,
	"userinfo": "s3://AKID:" + storeSecret + "@bucket-a/prefix?endpoint=http://127.0.0.1:9&region=us-east-1",
	"token":    "s3://bucket-a/prefix?endpoint=http://127.0.0.1:9&region=us-east-1&access_key=AKID&secret_key=x&session_token=" + storeSecret,
}

// syncBuffer is a log sink safe for the broker's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startBrokerFrom starts a broker whose configuration comes from a
// properties file (props, if not empty), environment variables and sets, as
// `strata serve` builds it, logging at debug level into log.
func startBrokerFrom(t *testing.T, props string, environ, sets []string, log *syncBuffer) *testBroker {
	return startBrokerReg(t, props, environ, sets, log, nil)
}

// startBrokerReg is startBrokerFrom with the broker's metrics in reg.
func startBrokerReg(t *testing.T, props string, environ, sets []string, log *syncBuffer, reg prometheus.Registerer) *testBroker {
	t.Helper()
	tb := &testBroker{t: t, dir: t.TempDir()}
	path := ""
	if props != "" {
		path = filepath.Join(t.TempDir(), "server.properties")
		if err := os.WriteFile(path, []byte(props), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sets = append([]string{"log.dirs=" + tb.dir, "listeners=PLAINTEXT://127.0.0.1:0"}, sets...)
	cfg, err := config.Load(path, environ, sets)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tb.serve(cfg, logger, reg)
	t.Cleanup(tb.stop)
	return tb
}

// rawFrame sends req on a fresh connection and returns the whole response
// frame, bytes as the broker wrote them.
func rawFrame(t *testing.T, tb *testBroker, req kmsg.Request) []byte {
	t.Helper()
	r := tb.raw()
	b := make([]byte, 4, 64)
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, 1)
	b = binary.BigEndian.AppendUint16(b, 4)
	b = append(b, "test"...)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	if err := r.send(b); err != nil {
		t.Fatal(err)
	}
	frame, err := r.readFrame()
	if err != nil {
		t.Fatal(err)
	}
	return frame
}

// decodeFrame decodes a response frame of req's kind.
func decodeFrame(t *testing.T, req kmsg.Request, frame []byte) kmsg.Response {
	t.Helper()
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	body := frame[4:]
	if resp.IsFlexible() {
		body = body[1:]
	}
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	return resp
}

// A secret in remote.storage.url, from any source, is answered as Kafka
// answers a password: null, IsSensitive=true, and its bytes nowhere in the
// response, at every DescribeConfigs version, synonyms and docs included.
func TestDescribeConfigsHidesStoreSecret(t *testing.T) {
	type source struct {
		props   string
		environ []string
		sets    []string
	}
	sources := map[string]func(u string) source{
		"set":        func(u string) source { return source{sets: []string{"remote.storage.url=" + u}} },
		"properties": func(u string) source { return source{props: "remote.storage.url=" + u + "\n"} },
		"environment": func(u string) source {
			return source{environ: []string{config.EnvName("remote.storage.url") + "=" + u}}
		},
	}
	for srcName, mk := range sources {
		for form, u := range secretURLs {
			t.Run(srcName+"/"+form, func(t *testing.T) {
				s := mk(u)
				var log syncBuffer
				tb := startBrokerFrom(t, s.props, s.environ, s.sets, &log)

				// A real client: kadm.
				rcs, err := tb.admin().DescribeBrokerConfigs(ctxT(t, 10*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				found := false
				for _, rc := range rcs {
					for _, c := range rc.Configs {
						if c.Key != "remote.storage.url" {
							continue
						}
						found = true
						if c.Value != nil || !c.Sensitive {
							t.Errorf("kadm: remote.storage.url value %v sensitive %v; want null, sensitive", strOrNil(c.Value), c.Sensitive)
						}
					}
				}
				if !found {
					t.Fatal("kadm: remote.storage.url not described")
				}

				// Every version, byte for byte.
				for v := int16(0); v <= 4; v++ {
					req := kmsg.NewPtrDescribeConfigsRequest()
					req.Version = v
					req.IncludeSynonyms, req.IncludeDocumentation = true, true
					rr := kmsg.NewDescribeConfigsRequestResource()
					rr.ResourceType, rr.ResourceName = resourceBroker, "0"
					req.Resources = append(req.Resources, rr)
					frame := rawFrame(t, tb, req)
					if bytes.Contains(frame, []byte(storeSecret)) {
						t.Errorf("DescribeConfigs v%d: the secret is in the response bytes", v)
					}
					resp := decodeFrame(t, req, frame).(*kmsg.DescribeConfigsResponse)
					for _, c := range resp.Resources[0].Configs {
						if c.Name != "remote.storage.url" {
							continue
						}
						if c.Value != nil || !c.IsSensitive {
							t.Errorf("DescribeConfigs v%d: remote.storage.url value %v sensitive %v; want null, sensitive", v, strOrNil(c.Value), c.IsSensitive)
						}
						for _, syn := range c.ConfigSynonyms {
							if syn.Value != nil {
								t.Errorf("DescribeConfigs v%d: synonym %s has value %q", v, syn.Name, *syn.Value)
							}
						}
					}
				}

			})
		}
	}
}

// The broker logs the keys that were set at start-up, as Kafka logs its
// config, with the secret-bearing one as [hidden]; no line of its start-up
// log (debug level) shows the secret, whatever its source and form.
func TestStartupLogHidesStoreSecret(t *testing.T) {
	for form, u := range secretURLs {
		for name, src := range map[string]struct {
			props   string
			environ []string
			sets    []string
		}{
			"set":         {sets: []string{"remote.storage.url=" + u}},
			"properties":  {props: "remote.storage.url=" + u + "\n"},
			"environment": {environ: []string{"STRATA_REMOTE_STORAGE_URL=" + u}},
		} {
			var log syncBuffer
			tb := startBrokerFrom(t, src.props, src.environ, src.sets, &log)
			tb.stop()
			out := log.String()
			if strings.Contains(out, storeSecret) {
				t.Errorf("%s/%s: the log shows the secret:\n%s", name, form, out)
			}
			if !strings.Contains(out, "msg=config") || !strings.Contains(out, "remote.storage.url=[hidden]") {
				t.Errorf("%s/%s: no config line with remote.storage.url=[hidden] at start-up:\n%s", name, form, out)
			}
			if !strings.Contains(out, "msg=\"remote tier\" url=\"s3://") {
				t.Errorf("%s/%s: the remote tier line is missing:\n%s", name, form, out)
			}
		}
	}
}

// Failing uploads (the endpoint refuses connections) put their errors in the
// log, the tier status (/v1/tier) and the S3 request metrics: none of them
// carries the secret.
func TestTierErrorsHideStoreSecret(t *testing.T) {
	for _, form := range []string{"query", "userinfo"} {
		var log syncBuffer
		reg := prometheus.NewRegistry()
		sets := []string{"remote.storage.url=" + secretURLs[form] + "&max_attempts=1",
			"remote.log.manager.task.interval.ms=50", "log.retention.check.interval.ms=50"}
		if form == "userinfo" {
			sets[0] = "remote.storage.url=" + strings.Replace(secretURLs[form], "?", "?max_attempts=1&", 1)
		}
		tb := startBrokerReg(t, "", nil, sets, &log, reg)
		tb.createTopic("failing", 1, map[string]*string{"segment.bytes": kmsg.StringPtr("1024")})
		cl := tb.client(kgo.DefaultProduceTopic("failing"))
		for i := 0; i < 20; i++ {
			produceSync(t, cl, &kgo.Record{Value: bytes.Repeat([]byte{'x'}, 200)})
		}
		var status string
		wait.For(t, time.Minute, "an upload error in the tier status", func() bool {
			sts := tb.mgr.Status("failing")
			b, _ := json.Marshal(sts)
			status = string(b)
			return len(sts) > 0 && sts[0].LastError != ""
		})
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var metrics strings.Builder
		for _, mf := range mfs {
			if _, err := expfmt.MetricFamilyToText(&metrics, mf); err != nil {
				t.Fatal(err)
			}
		}
		if !strings.Contains(metrics.String(), "strata_s3_request_failures_total") {
			t.Errorf("%s: no S3 failure counted:\n%s", form, metrics.String())
		}
		for what, out := range map[string]string{"log": log.String(), "status": status, "metrics": metrics.String()} {
			if strings.Contains(out, storeSecret) {
				t.Errorf("%s: the %s shows the secret:\n%s", form, what, out)
			}
		}
		tb.stop()
	}
}

// AlterConfigs and IncrementalAlterConfigs on the broker (refused: static)
// or naming remote.storage.url on a topic (unknown topic config) echo neither
// the configured secret nor the value sent.
func TestAlterConfigsDoNotEchoStoreSecret(t *testing.T) {
	var log syncBuffer
	tb := startBrokerFrom(t, "", nil, []string{"remote.storage.url=" + secretURLs["query"]}, &log)
	tb.createTopic("alter-secret", 1, nil)
	const sent = "s3://b/p?access_key=A&secret_key=SENTxSECRETxVALUE"
	for _, res := range []struct {
		typ  kmsg.ConfigResourceType
		name string
	}{{resourceBroker, "0"}, {resourceBroker, ""}, {resourceTopic, "alter-secret"}} {
		for v := int16(0); v <= 2; v++ {
			req := kmsg.NewPtrAlterConfigsRequest()
			req.Version = v
			rr := kmsg.NewAlterConfigsRequestResource()
			rr.ResourceType, rr.ResourceName = res.typ, res.name
			rr.Configs = []kmsg.AlterConfigsRequestResourceConfig{{Name: "remote.storage.url", Value: kmsg.StringPtr(sent)}}
			req.Resources = append(req.Resources, rr)
			frame := rawFrame(t, tb, req)
			checkNoSecret(t, "AlterConfigs", v, frame, decodeFrame(t, req, frame).(*kmsg.AlterConfigsResponse).Resources[0].ErrorCode)
		}
		for v := int16(0); v <= 1; v++ {
			req := kmsg.NewPtrIncrementalAlterConfigsRequest()
			req.Version = v
			rr := kmsg.NewIncrementalAlterConfigsRequestResource()
			rr.ResourceType, rr.ResourceName = res.typ, res.name
			rr.Configs = []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "remote.storage.url", Op: 0, Value: kmsg.StringPtr(sent)}}
			req.Resources = append(req.Resources, rr)
			frame := rawFrame(t, tb, req)
			checkNoSecret(t, "IncrementalAlterConfigs", v, frame, decodeFrame(t, req, frame).(*kmsg.IncrementalAlterConfigsResponse).Resources[0].ErrorCode)
		}
	}
}

func checkNoSecret(t *testing.T, api string, v int16, frame []byte, code int16) {
	t.Helper()
	if code == 0 {
		t.Errorf("%s v%d: remote.storage.url was accepted", api, v)
	}
	for _, s := range []string{storeSecret, "SENTxSECRETxVALUE"} {
		if bytes.Contains(frame, []byte(s)) {
			t.Errorf("%s v%d: the response echoes %q", api, v, s)
		}
	}
}

func strOrNil(s *string) string {
	if s == nil {
		return "null"
	}
	return *s
}
