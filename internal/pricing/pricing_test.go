package pricing

import (
	"math"
	"testing"
)

func TestBill(t *testing.T) {
	p := DefaultS3()
	// 30 GB for a day is one GB-month.
	if got := p.StoragePerDay(30 * GB); math.Abs(got-S3GBMonth) > 1e-12 {
		t.Fatalf("StoragePerDay(30 GB) = %g, want %g", got, S3GBMonth)
	}
	if got, want := p.Requests(2000, 10000), 2*S3PutPer1000+10*S3GetPer1000; math.Abs(got-want) > 1e-12 {
		t.Fatalf("Requests = %g, want %g", got, want)
	}
}
