// Package bench holds Tiercel's benchmarks: the machine's own limits
// (fsync'd sequential append, loopback TCP) and the broker workloads
// (produce, consume, end-to-end latency), so that results are reported as
// ratios to limits measured in the same run.
package bench

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// DiskAppend measures sequential appends of blockSize bytes, each followed
// by fdatasync, into a file under dir for about d: the ceiling for a log
// that acknowledges only durable writes. Returns MiB/s.
func DiskAppend(dir string, blockSize int, d time.Duration) (float64, error) {
	f, err := os.CreateTemp(dir, "tiercel-bench-disk-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, blockSize)
	for i := range buf {
		buf[i] = byte(i)
	}
	start := time.Now()
	var written int64
	for time.Since(start) < d {
		if _, err := f.Write(buf); err != nil {
			return 0, err
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return 0, err
		}
		written += int64(blockSize)
	}
	return mibPerSec(written, time.Since(start)), nil
}

// Loopback measures TCP throughput over 127.0.0.1 with 1 MiB writes for d.
func Loopback(d time.Duration) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- 0
			return
		}
		n, _ := io.Copy(io.Discard, c)
		got <- n
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 1<<20)
	start := time.Now()
	for time.Since(start) < d {
		if _, err := c.Write(buf); err != nil {
			return 0, err
		}
	}
	c.Close()
	n := <-got
	return mibPerSec(n, time.Since(start)), nil
}

// FreshMemory measures how fast this process can first touch mib MiB of
// memory it has just mapped, one write per page. On most machines that is
// several GiB/s; on a virtual machine whose host backs guest memory
// lazily it can be a few hundred MiB/s, and then every page the page cache
// grows into costs the same (a broker that writes fills the cache).
func FreshMemory(mib int) (float64, error) {
	m, err := syscall.Mmap(-1, 0, mib<<20, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return 0, err
	}
	defer syscall.Munmap(m)
	page := os.Getpagesize()
	start := time.Now()
	for i := 0; i < len(m); i += page {
		m[i] = 1
	}
	return mibPerSec(int64(len(m)), time.Since(start)), nil
}

func mibPerSec(n int64, d time.Duration) float64 { return float64(n) / (1 << 20) / d.Seconds() }

// ProcStat reads a process's CPU seconds (user+system) and RSS from /proc.
func ProcStat(pid int) (cpuSeconds float64, rssBytes int64, err error) {
	b, err := os.ReadFile(filepath.Join("/proc", fmt.Sprint(pid), "stat"))
	if err != nil {
		return 0, 0, err
	}
	return parseProcStat(string(b))
}

// parseProcStat reads utime and stime (fields 14 and 15) and rss (field
// 24) after the parenthesised command name, which may contain spaces.
func parseProcStat(s string) (float64, int64, error) {
	i := lastIndex(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("proc stat: no command name")
	}
	var fields []string
	field := ""
	for _, c := range s[i+2:] {
		if c == ' ' || c == '\n' {
			fields = append(fields, field)
			field = ""
			continue
		}
		field += string(c)
	}
	if field != "" {
		fields = append(fields, field)
	}
	// fields[0] is field 3 (state).
	if len(fields) < 22 {
		return 0, 0, fmt.Errorf("proc stat: %d fields", len(fields))
	}
	var utime, stime, rss int64
	fmt.Sscan(fields[11], &utime)
	fmt.Sscan(fields[12], &stime)
	fmt.Sscan(fields[21], &rss)
	const clkTck = 100 // USER_HZ on Linux
	return float64(utime+stime) / clkTck, rss * int64(os.Getpagesize()), nil
}

func lastIndex(s string, c byte) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == c {
			return i
		}
	}
	return -1
}
