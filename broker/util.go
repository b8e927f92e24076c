package broker

import "time"

func nowMs() int64 { return time.Now().UnixMilli() }

// timeoutMs turns a request's timeout into a duration with a sane floor
// and ceiling, so a zero or absurd value cannot hang or spin a request.
func timeoutMs(ms int32) time.Duration {
	d := time.Duration(ms) * time.Millisecond
	if d <= 0 {
		d = 30 * time.Second
	}
	return min(d, 5*time.Minute)
}
