package broker

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"testing"
)

// TestReadmeVersionTable keeps README.md's protocol table true: every API key
// served appears with its exact version range, and nothing else does.
func TestReadmeVersionTable(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`\| [A-Za-z]+ \((\d+)\) \| (\d+)(?:-(\d+))?`)
	seen := map[int16]bool{}
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		key, _ := strconv.Atoi(m[1])
		lo, _ := strconv.Atoi(m[2])
		hi := lo
		if m[3] != "" {
			hi, _ = strconv.Atoi(m[3])
		}
		r, ok := allServed[int16(key)]
		if !ok {
			t.Errorf("README lists key %d, which is not served", key)
			continue
		}
		if r != [2]int16{int16(lo), int16(hi)} {
			t.Errorf("README says key %d serves %d-%d; the broker serves %d-%d", key, lo, hi, r[0], r[1])
		}
		seen[int16(key)] = true
	}
	for k, r := range allServed {
		if !seen[k] {
			t.Errorf("key %d (%s) served at %d-%d is missing from README", k, fmt.Sprint(k), r[0], r[1])
		}
	}
}
