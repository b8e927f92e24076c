package brokertest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
)

// FreeAddrs picks n distinct loopback addresses free for TCP and UDP,
// below the kernel's ephemeral range (32768 and up on Linux): a port from
// that range can be taken between the pick and the broker's bind by any
// outgoing connection (one held for seconds was seen to keep a broker from
// starting). Each is held until all are picked, so none comes back twice.
func FreeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var held []net.Listener
	defer func() {
		for _, ln := range held {
			ln.Close()
		}
	}()
	var out []string
	for tries := 0; len(out) < n; tries++ {
		if tries > 10000 {
			t.Fatalf("brokertest: no free port below 32768 after %d tries", tries)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			ln.Close()
			continue
		}
		pc.Close()
		held = append(held, ln)
		out = append(out, addr)
	}
	return out
}

func freeAddr(t testing.TB) string { return FreeAddrs(t, 1)[0] }
