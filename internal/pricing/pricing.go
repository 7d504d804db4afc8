// Package pricing holds the object-store list prices the benchmark's cost
// model and the tier's live cost metrics share, and the arithmetic of a bill.
package pricing

// AWS S3 Standard list prices in us-east-1: the defaults of the benchmark's
// flags and of the broker's remote.storage.price.* keys.
const (
	S3GBMonth    = 0.023  // $ per GB-month stored
	S3PutPer1000 = 0.005  // $ per 1,000 PUT, POST, LIST, COPY requests
	S3GetPer1000 = 0.0004 // $ per 1,000 GET, HEAD requests
	DaysPerMonth = 30
	// GB is the gigabyte of a bill: AWS charges per 2^30 bytes.
	GB = 1 << 30
)

// S3 are object-store prices. DELETE requests are free.
type S3 struct {
	GBMonth    float64 // $ per GB-month stored
	PutPer1000 float64 // $ per 1,000 PUT-class requests
	GetPer1000 float64 // $ per 1,000 GET-class requests
}

// DefaultS3 are the list prices above.
func DefaultS3() S3 {
	return S3{GBMonth: S3GBMonth, PutPer1000: S3PutPer1000, GetPer1000: S3GetPer1000}
}

// StoragePerDay is what storedBytes cost per day.
func (p S3) StoragePerDay(storedBytes int64) float64 {
	return float64(storedBytes) / GB * p.GBMonth / DaysPerMonth
}

// Requests is what puts PUT-class and gets GET-class requests cost.
func (p S3) Requests(puts, gets int64) float64 {
	return float64(puts)*p.PutPer1000/1000 + float64(gets)*p.GetPer1000/1000
}
