package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/google/pprof/profile"
)

// CPU is the processor time of one phase. The broker runs in this process, so
// the process CPU (getrusage, user + system) is split between broker and
// client in the proportion of the phase's CPU profile samples labelled
// side=broker and side=client; unlabelled samples (GC workers, the runtime)
// are shared in the same proportion.
type CPU struct {
	Phase         string  `json:"phase"`
	WallSeconds   float64 `json:"wall_seconds"`
	ProcessSecs   float64 `json:"process_cpu_seconds"`
	BrokerSecs    float64 `json:"broker_cpu_seconds"`
	ClientSecs    float64 `json:"client_cpu_seconds"`
	BrokerSamples float64 `json:"broker_profile_seconds"`
	ClientSamples float64 `json:"client_profile_seconds"`
	OtherSamples  float64 `json:"unlabelled_profile_seconds"`
	Profile       string  `json:"profile,omitempty"` // file name in the output directory
	Split         bool    `json:"split"`             // false: no profile, all CPU counted as broker
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measureCPU runs fn under a CPU profile and getrusage. The profile is
// written to dir/<phase>.pprof when dir is set.
func measureCPU(phase, dir string, fn func() error) (CPU, error) {
	var buf bytes.Buffer
	profiling := pprof.StartCPUProfile(&buf) == nil
	c0, t0 := processCPU(), time.Now()
	err := fn()
	c1, t1 := processCPU(), time.Now()
	if profiling {
		pprof.StopCPUProfile()
	}
	res := CPU{Phase: phase, WallSeconds: t1.Sub(t0).Seconds(), ProcessSecs: (c1 - c0).Seconds()}
	res.BrokerSecs = res.ProcessSecs
	if !profiling {
		return res, err
	}
	if dir != "" {
		res.Profile = phase + ".pprof"
		os.WriteFile(filepath.Join(dir, res.Profile), buf.Bytes(), 0o644)
	}
	p, perr := profile.Parse(&buf)
	if perr != nil {
		return res, err
	}
	vi := len(p.SampleType) - 1
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			vi = i
		}
	}
	for _, s := range p.Sample {
		v := float64(s.Value[vi]) / 1e9
		switch side := s.Label["side"]; {
		case len(side) > 0 && side[0] == "broker":
			res.BrokerSamples += v
		case len(side) > 0 && side[0] == "client":
			res.ClientSamples += v
		default:
			res.OtherSamples += v
		}
	}
	if lab := res.BrokerSamples + res.ClientSamples; lab > 0 {
		res.Split = true
		res.BrokerSecs = res.ProcessSecs * res.BrokerSamples / lab
		res.ClientSecs = res.ProcessSecs * res.ClientSamples / lab
	}
	return res, err
}
