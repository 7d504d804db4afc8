// Package remotestore is the object-store interface the tiering manager
// writes segments through, with the decorators that wrap any backend.
//
// # Backends
//
// Each backend is its own package, so a binary links only what it uses:
//
//   - remotestore/s3: AWS S3, MinIO or any S3-compatible store (aws-sdk-go-v2)
//   - remotestore/fs: a local directory, the embedded default
//   - remotestore/mem: in memory, for unit tests
//
// remotestore/backend opens any of them from a URL (s3://, file://, mem://).
// remotestore/faultstore injects failures for tests, and remotestore/storetest
// is the acceptance suite every backend passes (s3 against a real MinIO).
//
// # Contract
//
// Keys are '/'-separated and checked by ValidateKey in every backend, so a key
// accepted by one is accepted by all. List reports keys in byte order. A
// failed Put leaves no visible object. GetRange edges are the same everywhere
// (see Store.GetRange). Errors wrap ErrNotFound, ErrInvalidKey and
// ErrInvalidRange; errors that retrying cannot fix may be marked Permanent.
//
// # Decorators
//
// WithPrefix keeps every key under a prefix. WithRetries retries with
// exponential backoff and jitter, rewinding Put's reader, resuming a
// GetRange body that fails part-way, and resuming a List after the last key
// it reported. WithMetrics records operations in a prometheus.Registerer.
// WithTimeouts ends an attempt that overruns its bound with an error wrapping
// ErrTimeout that names the store, the operation and the key: small calls by
// a request timeout, Puts and GetRange bodies by a stall timeout (no byte
// moved for that long), so a large healthy transfer is never cut and a
// stopped store always is. WithHealth reports every call's outcome to a
// Health, which says whether the store answers (its last failure is older
// than its last success) and tells its watchers once per change.
// The usual stack, outermost first: metrics, retries, health, timeouts,
// prefix, backend (backend.Open builds it).
//
// # Metrics
//
// WithMetrics registers, with label operation = put, get_range, head,
// delete or list where shown:
//
//	strata_remote_store_operations_total{operation}          operations started
//	strata_remote_store_operation_failures_total{operation}  failed (not-found and caller cancellation excluded)
//	strata_remote_store_not_found_total{operation}           found no object
//	strata_remote_store_operation_duration_seconds{operation} latency histogram; get_range until the body is ready
//	strata_remote_store_inflight_operations{operation}       in progress
//	strata_remote_store_written_bytes_total                  bytes stored by successful puts
//	strata_remote_store_read_bytes_total                     bytes read from get_range bodies
//	strata_remote_store_listed_objects_total                 objects reported by list
//
// The s3 backend's request observer (s3.NewRequestMetrics) adds, per HTTP
// request the AWS SDK sends (retries and multipart parts included), with
// operation the S3 API name (PutObject, UploadPart, GetObject, ...):
//
//	strata_s3_requests_total{operation}          requests sent
//	strata_s3_request_failures_total{operation}  requests with no response or an HTTP status >= 400
//	strata_s3_request_duration_seconds{operation} latency histogram of one request
//
// Retries and metrics take their registry and policy from the caller; the
// package holds no global state.
package remotestore
