package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// cpuTicks returns the user + system CPU time of process pid, in clock
// ticks, from /proc/PID/stat.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read hookbay's CPU time: %w", err)
	}
	// The command name, field 2, is in parentheses and may hold spaces; the
	// fields after its closing one start with field 3 (state), so utime
	// (14) and stime (15) are the 12th and 13th.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("read hookbay's CPU time: /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("read hookbay's CPU time: /proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("read hookbay's CPU time: /proc/%d/stat: utime %q, stime %q", pid, f[11], f[12])
	}
	return utime + stime, nil
}

// cpuMeter reads one process's CPU time; with no pid it measures nothing.
type cpuMeter struct{ pid, hz int }

// read returns the CPU time so far in clock ticks (0 without a pid).
func (m cpuMeter) read() (int64, error) {
	if m.pid == 0 {
		return 0, nil
	}
	return cpuTicks(m.pid)
}

// perUnit returns the CPU time of ticks, in microseconds, per one of n.
func (m cpuMeter) perUnit(ticks, n int64) float64 {
	if n <= 0 {
		return 0
	}
	return float64(ticks) / float64(m.hz) * 1e6 / float64(n)
}
