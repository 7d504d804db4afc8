// Package s3 is the remotestore.Store on AWS S3, MinIO or any S3-compatible
// service, with aws-sdk-go-v2.
//
// Put sends one PutObject below Config.MultipartThreshold and a multipart
// upload (Config.Concurrency parts of Config.PartSize at once) above it; a
// failed multipart upload is aborted so no parts linger. GetRange sends a
// Range header. List pages through ListObjectsV2 with URL-encoded keys.
// NoSuchKey, NotFound and other 404s (but NoSuchBucket) map to
// remotestore.ErrNotFound; NoSuchBucket and refused credentials are marked
// remotestore.Permanent so retries give up at once.
//
// Request checksums are sent only where S3 requires them, for the widest
// compatibility with S3-compatible stores; the tier checks segment CRCs
// itself. Every HTTP request the SDK makes is shown to Config.Observer, by
// operation name; NewRequestMetrics is an Observer that counts them for the
// cost model.
//
// Credentials: Config.AccessKey with Config.SecretKey, or with
// Config.SecretKeyFile (read once by New); without an access key, the AWS
// default chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
// AWS_SESSION_TOKEN, the shared credentials file and Config.Profile, web
// identity, instance role). Prefer the chain or a file to a secret held in
// a URL or a command line. A Config prints (%v, %+v, %#v) with its secrets
// replaced by "xxxxx".
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/stratalog/strata/remotestore"
)

// Store is an S3 bucket as a remotestore.Store, safe for concurrent use.
type Store struct {
	client *awss3.Client
	cfg    Config
}

var _ remotestore.Store = (*Store)(nil)

// New returns a Store for cfg. It sends no request: a missing bucket or bad
// credentials show on the first operation (or call CheckBucket).
func New(ctx context.Context, cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.SecretKeyFile != "" {
		v, err := readSecretFile("secret_key_file", cfg.SecretKeyFile)
		if err != nil {
			return nil, err
		}
		cfg.SecretKey = v
	}
	if cfg.SessionTokenFile != "" {
		v, err := readSecretFile("session_token_file", cfg.SessionTokenFile)
		if err != nil {
			return nil, err
		}
		cfg.SessionToken = v
	}
	loadOpts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = cfg.MaxAttempts
				// The SDK's retry quota turns a long outage into
				// "retry quota exceeded" for every later request; our
				// attempts are bounded anyway.
				o.RateLimiter = ratelimit.None
			})
		}),
		awsconfig.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		awsconfig.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if cfg.Region != "" {
		loadOpts = append(loadOpts, awsconfig.WithRegion(cfg.Region))
	}
	if cfg.AccessKey != "" {
		loadOpts = append(loadOpts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)))
	}
	if cfg.Profile != "" {
		loadOpts = append(loadOpts, awsconfig.WithSharedConfigProfile(cfg.Profile))
	}
	if cfg.HTTPClient != nil {
		loadOpts = append(loadOpts, awsconfig.WithHTTPClient(cfg.HTTPClient))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("remotestore/s3: loading AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = DefaultRegion
	}
	cfg.Region = awsCfg.Region
	client := awss3.NewFromConfig(awsCfg, func(o *awss3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		if cfg.Observer != nil {
			o.APIOptions = append(o.APIOptions, observe(cfg.Observer))
		}
	})
	return &Store{client: client, cfg: cfg}, nil
}

// Client returns the SDK client, for tools that need more than Store.
func (s *Store) Client() *awss3.Client { return s.client }

// Bucket returns the bucket name.
func (s *Store) Bucket() string { return s.cfg.Bucket }

// observe adds a middleware at the end of the deserialize step, next to the
// transport, so it runs once per HTTP attempt (the retry loop is in the
// finalize step, before it) and sees the raw response status.
func observe(obs Observer) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("StrataRequestObserver",
			func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
				start := time.Now()
				out, md, err := next.HandleDeserialize(ctx, in)
				status := 0
				if resp, ok := out.RawResponse.(*smithyhttp.Response); ok && resp != nil {
					status = resp.StatusCode
				}
				obs.ObserveRequest(awsmiddleware.GetOperationName(ctx), status, time.Since(start), err)
				return out, md, err
			}), middleware.After)
	}
}

// CheckBucket returns an error unless the bucket exists and is reachable
// with the credentials.
func (s *Store) CheckBucket(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: &s.cfg.Bucket})
	if err != nil {
		return fmt.Errorf("remotestore/s3: bucket %q: %w", s.cfg.Bucket, err)
	}
	return nil
}

func errorCode(err error) (code string, status int) {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) {
		status = respErr.HTTPStatusCode()
	}
	return code, status
}

// wrapErr maps an SDK error to the remotestore errors.
func (s *Store) wrapErr(op, key string, err error) error {
	if err == nil {
		return nil
	}
	code, status := errorCode(err)
	switch {
	case code == "NoSuchBucket":
		return remotestore.Permanent(fmt.Errorf("remotestore/s3: %s %q: bucket %q does not exist: %w", op, key, s.cfg.Bucket, err))
	case code == "NoSuchKey" || code == "NotFound" || status == 404:
		return fmt.Errorf("remotestore/s3: %s %q in bucket %q: %w: %w", op, key, s.cfg.Bucket, remotestore.ErrNotFound, err)
	case code == "AccessDenied" || code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" || status == 403:
		return remotestore.Permanent(fmt.Errorf("remotestore/s3: %s %q in bucket %q: access refused: %w", op, key, s.cfg.Bucket, err))
	}
	return fmt.Errorf("remotestore/s3: %s %q in bucket %q: %w", op, key, s.cfg.Bucket, err)
}

// Put implements remotestore.Store.
func (s *Store) Put(ctx context.Context, key string, r io.ReadSeeker, size int64) error {
	if err := remotestore.ValidateKey(key); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("remotestore/s3: put %q: negative size %d", key, size)
	}
	body, err := newWindow(r, size)
	if err != nil {
		return fmt.Errorf("remotestore/s3: put %q: %w", key, err)
	}
	if size < s.cfg.MultipartThreshold {
		_, err := s.client.PutObject(ctx, &awss3.PutObjectInput{
			Bucket:        &s.cfg.Bucket,
			Key:           &key,
			Body:          body,
			ContentLength: &size,
		})
		return s.wrapErr("put", key, err)
	}
	return s.putMultipart(ctx, key, body, size)
}

// window is the ReadSeeker of size bytes from where r was when made: the SDK
// seeks the body to sign and to retry it, and must not see past size.
type window struct {
	r          io.ReadSeeker
	base, size int64
	pos        int64
}

func newWindow(r io.ReadSeeker, size int64) (*window, error) {
	if r == nil {
		if size != 0 {
			return nil, errors.New("nil reader")
		}
		r = bytes.NewReader(nil)
	}
	base, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, fmt.Errorf("cannot seek reader: %w", err)
	}
	return &window{r: r, base: base, size: size}, nil
}

func (w *window) Read(p []byte) (int, error) {
	if w.pos >= w.size {
		return 0, io.EOF
	}
	if rest := w.size - w.pos; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := w.r.Read(p)
	w.pos += int64(n)
	if err == io.EOF && w.pos < w.size {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (w *window) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = w.pos + offset
	case io.SeekEnd:
		abs = w.size + offset
	default:
		return 0, errors.New("remotestore/s3: bad whence")
	}
	if abs < 0 {
		return 0, errors.New("remotestore/s3: negative position")
	}
	if _, err := w.r.Seek(w.base+abs, io.SeekStart); err != nil {
		return 0, err
	}
	w.pos = abs
	return abs, nil
}

// putMultipart uploads body in parts, Concurrency at once, and aborts the
// upload if anything fails.
func (s *Store) putMultipart(ctx context.Context, key string, body io.Reader, size int64) (err error) {
	partSize := s.cfg.PartSize
	nparts := (size + partSize - 1) / partSize
	if nparts > MaxParts {
		// Grow the parts rather than fail: S3 allows 10,000.
		partSize = (size + MaxParts - 1) / MaxParts
		nparts = (size + partSize - 1) / partSize
	}
	created, err := s.client.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: &s.cfg.Bucket, Key: &key})
	if err != nil {
		return s.wrapErr("put (create multipart upload)", key, err)
	}
	uploadID := created.UploadId
	defer func() {
		if err == nil {
			return
		}
		// Abort even when ctx is done, or the parts stay billed until a
		// lifecycle rule removes them.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, aerr := s.client.AbortMultipartUpload(actx, &awss3.AbortMultipartUploadInput{Bucket: &s.cfg.Bucket, Key: &key, UploadId: uploadID}); aerr != nil {
			err = fmt.Errorf("%w (and aborting upload %s failed: %w)", err, aws.ToString(uploadID), aerr)
		}
	}()

	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(e error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = e
			cancel()
		}
		mu.Unlock()
	}
	completed := make([]types.CompletedPart, nparts)
	buffers := make(chan []byte, s.cfg.Concurrency)
	for range s.cfg.Concurrency {
		buffers <- nil // allocated on first use, so small uploads stay small
	}
	for i := int64(0); i < nparts; i++ {
		var buf []byte
		select {
		case buf = <-buffers:
		case <-pctx.Done():
		}
		if pctx.Err() != nil {
			break
		}
		n := min(partSize, size-i*partSize)
		if int64(cap(buf)) < n {
			buf = make([]byte, partSize)
		}
		buf = buf[:n]
		if _, rerr := io.ReadFull(body, buf); rerr != nil {
			fail(fmt.Errorf("remotestore/s3: put %q: reading part %d: %w", key, i+1, rerr))
			break
		}
		wg.Go(func() {
			defer func() { buffers <- buf }()
			num := int32(i + 1)
			out, uerr := s.client.UploadPart(pctx, &awss3.UploadPartInput{
				Bucket:        &s.cfg.Bucket,
				Key:           &key,
				UploadId:      uploadID,
				PartNumber:    &num,
				Body:          bytes.NewReader(buf),
				ContentLength: aws.Int64(int64(len(buf))),
			})
			if uerr != nil {
				fail(s.wrapErr(fmt.Sprintf("put (part %d)", num), key, uerr))
				return
			}
			completed[i] = types.CompletedPart{ETag: out.ETag, PartNumber: &num}
		})
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		return firstErr
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{
		Bucket:          &s.cfg.Bucket,
		Key:             &key,
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: completed},
	})
	return s.wrapErr("put (complete multipart upload)", key, err)
}

// GetRange implements remotestore.Store, with the edges of the interface:
// S3 answers 416 for a range starting at or past the end, which becomes an
// empty body at the end and ErrInvalidRange past it.
func (s *Store) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := remotestore.ValidateKey(key); err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("%w: offset %d of %q", remotestore.ErrInvalidRange, off, key)
	}
	if length == 0 {
		return s.emptyAt(ctx, key, off)
	}
	in := &awss3.GetObjectInput{Bucket: &s.cfg.Bucket, Key: &key}
	switch {
	case length > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+length-1))
	case off > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", off))
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		if code, status := errorCode(err); code == "InvalidRange" || status == 416 {
			return s.emptyAt(ctx, key, off)
		}
		return nil, s.wrapErr("get", key, err)
	}
	return out.Body, nil
}

// emptyAt returns an empty body if off is within the object, or the error.
func (s *Store) emptyAt(ctx context.Context, key string, off int64) (io.ReadCloser, error) {
	info, err := s.Head(ctx, key)
	if err != nil {
		return nil, err
	}
	if _, err := remotestore.CheckRange(key, off, 0, info.Size); err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(nil)), nil
}

// Head implements remotestore.Store.
func (s *Store) Head(ctx context.Context, key string) (remotestore.ObjectInfo, error) {
	if err := remotestore.ValidateKey(key); err != nil {
		return remotestore.ObjectInfo{}, err
	}
	out, err := s.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &s.cfg.Bucket, Key: &key})
	if err != nil {
		return remotestore.ObjectInfo{}, s.wrapErr("head", key, err)
	}
	return remotestore.ObjectInfo{Key: key, Size: aws.ToInt64(out.ContentLength), LastModified: aws.ToTime(out.LastModified)}, nil
}

// Delete implements remotestore.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := remotestore.ValidateKey(key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: &s.cfg.Bucket, Key: &key})
	err = s.wrapErr("delete", key, err)
	if remotestore.IsNotFound(err) {
		return nil // S3 answers 204 for a missing key; some compatible stores 404
	}
	return err
}

// List implements remotestore.Store. Keys are requested URL-encoded, so
// keys with characters XML cannot carry list correctly.
func (s *Store) List(ctx context.Context, prefix string, fn func(remotestore.ObjectInfo) error) error {
	p := awss3.NewListObjectsV2Paginator(s.client, &awss3.ListObjectsV2Input{
		Bucket:       &s.cfg.Bucket,
		Prefix:       aws.String(prefix),
		EncodingType: types.EncodingTypeUrl,
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return s.wrapErr("list", prefix, err)
		}
		encoded := page.EncodingType == types.EncodingTypeUrl
		for _, obj := range page.Contents {
			key := aws.ToString(obj.Key)
			if encoded {
				k, err := url.QueryUnescape(key)
				if err != nil {
					return fmt.Errorf("remotestore/s3: list %q: bad encoded key %q: %w", prefix, key, err)
				}
				key = k
			}
			if err := fn(remotestore.ObjectInfo{Key: key, Size: aws.ToInt64(obj.Size), LastModified: aws.ToTime(obj.LastModified)}); err != nil {
				return err
			}
		}
	}
	return nil
}
