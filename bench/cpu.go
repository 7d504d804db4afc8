package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
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
	// StoreSecs is the object store's CPU (MinIO's utime + stime) during
	// the phase, with --s3.
	StoreSecs float64 `json:"store_cpu_seconds,omitempty"`
	// MachineBusy is the share of all the machine's cores' time that was
	// not idle during the phase (/proc/stat), whoever used it;
	// MachineSecs is that time in CPU seconds.
	MachineBusy float64 `json:"machine_busy"`
	MachineSecs float64 `json:"machine_cpu_seconds"`
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineTicks are the busy and total clock ticks of all cores so far, from
// the first line of /proc/stat; ok is false where it cannot be read.
func machineTicks() (busy, total int64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0, false
	}
	// user nice system idle iowait irq softirq steal ...; guest time is
	// already counted in user and nice.
	for i := 1; i < len(f) && i <= 8; i++ {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, 0, false
		}
		total += v
		if i != 4 && i != 5 {
			busy += v
		}
	}
	return busy, total, total > 0
}

// storeCPU is the CPU time of process pid (the object store), 0 if pid is 0
// or cannot be read.
func storeCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	u, s, err := procCPU(pid)
	if err != nil {
		return 0
	}
	return u + s
}

// measureCPU runs fn under a CPU profile and getrusage, and reads the CPU
// of storePid (0: none) and of the whole machine around it. The profile is
// written to dir/<phase>.pprof when dir is set.
func measureCPU(phase, dir string, storePid int, fn func() error) (CPU, error) {
	var buf bytes.Buffer
	profiling := pprof.StartCPUProfile(&buf) == nil
	b0, m0, mok0 := machineTicks()
	s0, c0, t0 := storeCPU(storePid), processCPU(), time.Now()
	err := fn()
	c1, t1, s1 := processCPU(), time.Now(), storeCPU(storePid)
	b1, m1, mok1 := machineTicks()
	if profiling {
		pprof.StopCPUProfile()
	}
	res := CPU{Phase: phase, WallSeconds: t1.Sub(t0).Seconds(), ProcessSecs: (c1 - c0).Seconds(), StoreSecs: (s1 - s0).Seconds()}
	if mok0 && mok1 && m1 > m0 {
		res.MachineBusy = float64(b1-b0) / float64(m1-m0)
		res.MachineSecs = float64(b1-b0) / clockTicks
	}
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
