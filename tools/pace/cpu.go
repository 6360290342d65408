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

// contextSwitches returns how many times the threads of process pid have
// been switched out, voluntarily or not, from /proc/PID/task/*/status: on
// a VM each is a wake-up the hypervisor makes dear. Threads that have
// exited are not counted (the Go runtime seldom ends one).
func contextSwitches(pid int) (int64, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("read hookbay's context switches: %w", err)
	}
	var n int64
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/status")
		if err != nil {
			continue // the thread has exited since the listing
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
				c, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				if err != nil {
					return 0, fmt.Errorf("read hookbay's context switches: %s/%s/status: %q", dir, t.Name(), line)
				}
				n += c
			}
		}
	}
	return n, nil
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

// switches returns the process's context switches so far (0 without a
// pid).
func (m cpuMeter) switches() (int64, error) {
	if m.pid == 0 {
		return 0, nil
	}
	return contextSwitches(m.pid)
}

// used is what a process had used at one moment: CPU time in clock ticks
// and context switches.
type used struct{ ticks, switches int64 }

// used returns the process's CPU time and context switches so far (zero
// without a pid).
func (m cpuMeter) used() (used, error) {
	t, err := m.read()
	if err != nil {
		return used{}, err
	}
	x, err := m.switches()
	if err != nil {
		return used{}, err
	}
	return used{t, x}, nil
}

// perUnit returns the CPU time of ticks, in microseconds, per one of n.
func (m cpuMeter) perUnit(ticks, n int64) float64 {
	if n <= 0 {
		return 0
	}
	return float64(ticks) / float64(m.hz) * 1e6 / float64(n)
}
