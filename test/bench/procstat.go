package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// clockTicksPerSecond is USER_HZ, the unit of utime/stime in /proc/<pid>/stat;
// it is 100 on every Linux architecture Go supports.
const clockTicksPerSecond = 100

// cpuTime returns the user+system CPU time a process has used so far,
// summed over its threads.
func cpuTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading stat of pid %d: %w", pid, err)
	}
	// The command name (field 2) may contain spaces; fields after it are
	// counted from the closing parenthesis.
	rest := string(data)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	fields := strings.Fields(rest)
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	const utimeIndex, stimeIndex = 14 - 3, 15 - 3
	if len(fields) <= stimeIndex {
		return 0, fmt.Errorf("stat of pid %d has only %d fields", pid, len(fields))
	}
	var ticks int64
	for _, i := range []int{utimeIndex, stimeIndex} {
		n, err := strconv.ParseInt(fields[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parsing stat field %d of pid %d: %w", i+3, pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicksPerSecond, nil
}

// peakRSS returns a process's high-water resident set size (VmHWM) in bytes.
func peakRSS(pid int) (int64, error) { return statusKB(pid, "VmHWM:") }

// anonRSS returns a process's resident anonymous memory (RssAnon) in bytes:
// heap and stacks, without the file-backed pages of its binary.
func anonRSS(pid int) (int64, error) { return statusKB(pid, "RssAnon:") }

// statusKB reads one "<field> N kB" line of /proc/<pid>/status, in bytes.
func statusKB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading status of pid %d: %w", pid, err)
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		value, found := strings.CutPrefix(scanner.Text(), field)
		if !found {
			continue
		}
		fields := strings.Fields(value)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("unexpected %s line %q", field, scanner.Text())
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parsing %s of pid %d: %w", field, pid, err)
		}
		return kb * 1024, nil
	}
	if err := scanner.Err(); err != nil {
		return 0, fmt.Errorf("reading status of pid %d: %w", pid, err)
	}
	return 0, fmt.Errorf("no %s in status of pid %d", field, pid)
}

// anonSampler tracks the highest RssAnon of a process, which the kernel
// does not record, by sampling it until stopped.
type anonSampler struct {
	peak     atomic.Int64
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

func sampleAnonRSS(pid int, every time.Duration) *anonSampler {
	s := &anonSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		ticker := time.NewTicker(every)
		defer ticker.Stop()
		for {
			if rss, err := anonRSS(pid); err == nil && rss > s.peak.Load() {
				s.peak.Store(rss)
			}
			select {
			case <-s.stop:
				return
			case <-ticker.C:
			}
		}
	}()
	return s
}

// Stop ends sampling; it may be called more than once.
func (s *anonSampler) Stop() {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
}

// Peak stops sampling and returns the highest value seen, in bytes.
func (s *anonSampler) Peak() int64 {
	s.Stop()
	return s.peak.Load()
}

// loadAverage is the machine's one-minute load average, the figure that
// says how much else was running while a benchmark measured.
func loadAverage() (float64, error) {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, fmt.Errorf("reading load average: %w", err)
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 {
		return 0, fmt.Errorf("empty /proc/loadavg")
	}
	load, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return 0, fmt.Errorf("parsing load average %q: %w", fields[0], err)
	}
	return load, nil
}

// memAvailable returns the memory the kernel could give new processes
// (MemAvailable in /proc/meminfo) and the machine's total, in bytes.
func memAvailable() (available, total int64, err error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, 0, fmt.Errorf("reading meminfo: %w", err)
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) < 2 {
			continue
		}
		kb, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "MemAvailable:":
			available = kb * 1024
		case "MemTotal:":
			total = kb * 1024
		}
	}
	if err := scanner.Err(); err != nil {
		return 0, 0, fmt.Errorf("reading meminfo: %w", err)
	}
	if available == 0 || total == 0 {
		return 0, 0, fmt.Errorf("meminfo has no MemAvailable or MemTotal")
	}
	return available, total, nil
}
