// Package gossip is cluster membership: which brokers are up, where their
// Kafka listeners are, and hints that the metadata log has new entries.
// It wraps hashicorp/memberlist. Membership is only ever a hint to the
// broker: who leads a partition is decided by the metadata log and the
// leases in the bucket (docs/design.md, "Control plane"), never by
// gossip's failure detector.
package gossip

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Meta is what a broker tells the others about itself (memberlist node
// metadata: at most 512 bytes encoded).
type Meta struct {
	BrokerID    int32  `json:"id"`
	KafkaAddr   string `json:"kafka"`
	Rack        string `json:"rack,omitempty"`
	Region      string `json:"region,omitempty"`
	AdminAddr   string `json:"admin,omitempty"`
	Version     string `json:"version,omitempty"`
	Incarnation string `json:"inc,omitempty"` // one per process start
}

// Member is a broker gossip currently considers up (alive or suspected:
// memberlist reports no event when it starts suspecting a node).
type Member struct {
	Meta
	Name string
	Addr string // the gossip address
}

// Config starts a Node.
type Config struct {
	Meta Meta
	// BindAddr is host:port for gossip (TCP and UDP); port 0 picks one.
	BindAddr string
	// AdvertiseAddr, if set, is the host:port others reach this node at.
	AdvertiseAddr string
	// Seeds are gossip addresses of brokers to join; joining is retried in
	// the background until one answers, so brokers may start in any order.
	Seeds []string
	// Transport replaces the network (tests: memberlist.MockNetwork).
	Transport memberlist.Transport
	// Local uses memberlist's timings for a single machine (faster
	// failure detection); otherwise its LAN timings.
	Local  bool
	Logger *slog.Logger
	// OnChange is called after a broker joins, leaves or changes its Meta.
	OnChange func()
	// OnHint is called when a peer announces metadata-log entry seq.
	OnHint func(seq int64)
	// OnLease is called when a peer announces the version of its lease
	// object it has just written (after every renewal).
	OnLease func(broker int32, version string)
	// OnConflict is called when another process gossips with this
	// broker's name: two brokers configured with one id.
	OnConflict func(other Member)
}

// Node is this broker's membership in the cluster.
type Node struct {
	cfg     Config
	ml      *memberlist.Memberlist
	queue   *memberlist.TransmitLimitedQueue
	meta    []byte
	seq     atomic.Int64 // newest metadata entry this node announced or heard of
	stop    chan struct{}
	stopped sync.Once
	joined  chan struct{}

	// members are copies made in memberlist's event callbacks, which run
	// under its lock: the nodes memberlist.Members returns are pointers
	// it keeps updating, so reading them later is a data race.
	memMu   sync.Mutex
	members map[string]Member

	// readvertiseUntil (unix ns): for a while after start, and after
	// another address was seen gossiping with this node's name (most
	// likely this broker's previous process, before a restart at a new
	// address), the node announces itself again every second: the others
	// keep an old entry until they find it left or dead, and ignore the
	// announcements that came before.
	readvertiseUntil atomic.Int64
}

// readvertiseFor is how long a node announces itself again after it
// starts or sees its name at another address: past the failure detection
// of an old entry with either memberlist configuration.
const readvertiseFor = time.Minute

// NodeName is the gossip name of a broker id: one name per id, so two
// processes with the same id collide visibly.
func NodeName(brokerID int32) string { return "broker-" + strconv.Itoa(int(brokerID)) }

// Start joins the cluster (in the background if no seed answers yet).
func Start(cfg Config) (*Node, error) {
	meta, err := json.Marshal(cfg.Meta)
	if err != nil {
		return nil, err
	}
	if len(meta) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("gossip: broker metadata is %d bytes; the limit is %d (shorten the rack, region or addresses)", len(meta), memberlist.MetaMaxSize)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	n := &Node{cfg: cfg, meta: meta, stop: make(chan struct{}), joined: make(chan struct{}), members: map[string]Member{}}
	mc := memberlist.DefaultLANConfig()
	if cfg.Local {
		mc = memberlist.DefaultLocalConfig()
	}
	mc.Name = NodeName(cfg.Meta.BrokerID)
	// A broker back on another address (a new pod IP, a random port) takes
	// its name over as soon as the old entry is dead or left; by default
	// memberlist refuses the new address until the dead entry is
	// forgotten, and the others keep dialling the old one.
	mc.DeadNodeReclaimTime = time.Nanosecond
	mc.Delegate = (*delegate)(n)
	mc.Events = (*events)(n)
	mc.Conflict = (*conflicts)(n)
	mc.Logger = log.New(slogWriter{cfg.Logger}, "", 0)
	if cfg.Transport != nil {
		mc.Transport = cfg.Transport
	} else {
		host, port, err := splitHostPort(cfg.BindAddr)
		if err != nil {
			return nil, fmt.Errorf("gossip address %q: %w", cfg.BindAddr, err)
		}
		mc.BindAddr, mc.BindPort, mc.AdvertisePort = host, port, port // port 0: memberlist picks one
	}
	if cfg.AdvertiseAddr != "" {
		host, port, err := splitHostPort(cfg.AdvertiseAddr)
		if err != nil {
			return nil, fmt.Errorf("gossip advertised address %q: %w", cfg.AdvertiseAddr, err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = host, port
	}
	// The queue exists before memberlist starts gossiping (it asks for
	// broadcasts at once); it counts members through the list once made.
	var created atomic.Pointer[memberlist.Memberlist]
	n.queue = &memberlist.TransmitLimitedQueue{RetransmitMult: mc.RetransmitMult, NumNodes: func() int {
		if ml := created.Load(); ml != nil {
			return ml.NumMembers()
		}
		return 1
	}}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("gossip on %s: %w", cfg.BindAddr, err)
	}
	created.Store(ml)
	n.ml = ml
	// A new process may find its name still listed at its previous
	// address by some brokers while others already saw it leave; only
	// the former report a conflict, so announce anyway for a while.
	n.readvertiseUntil.Store(time.Now().Add(readvertiseFor).UnixNano())
	go n.join()
	go n.readvertise()
	return n, nil
}

// readvertise announces this node again (a new incarnation of its alive
// message) every second while readvertiseUntil says so.
func (n *Node) readvertise() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
		}
		if time.Now().UnixNano() < n.readvertiseUntil.Load() {
			_ = n.ml.UpdateNode(time.Second)
		}
	}
}

// join contacts the seeds until one answers.
func (n *Node) join() {
	defer close(n.joined)
	if len(n.cfg.Seeds) == 0 {
		return
	}
	backoff := 100 * time.Millisecond
	for {
		if _, err := n.ml.Join(n.cfg.Seeds); err == nil {
			return
		} else {
			n.cfg.Logger.Debug("gossip: no seed answered yet", "seeds", n.cfg.Seeds, "err", err)
		}
		select {
		case <-n.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// Addr is the gossip address others reach this node at.
func (n *Node) Addr() string {
	n.memMu.Lock()
	defer n.memMu.Unlock()
	return n.members[NodeName(n.cfg.Meta.BrokerID)].Addr // memberlist reports itself joining first
}

// Members lists the brokers gossip considers up, this one included,
// ordered by broker id.
func (n *Node) Members() []Member {
	n.memMu.Lock()
	out := make([]Member, 0, len(n.members))
	for _, m := range n.members {
		out = append(out, m)
	}
	n.memMu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].BrokerID < out[j].BrokerID })
	return out
}

// Announce tells the other brokers that the metadata log reached seq, so
// they catch up now instead of at their next poll.
func (n *Node) Announce(seq int64) {
	for {
		cur := n.seq.Load()
		if seq <= cur || n.seq.CompareAndSwap(cur, seq) {
			break
		}
	}
	msg, _ := json.Marshal(hint{Seq: seq})
	n.queue.QueueBroadcast(broadcast{name: "metadata-seq", msg: msg})
}

// AnnounceLease tells the other brokers the version of this broker's
// lease object it has just written. A broker watching for this one's
// failure counts its wait from when the version reached it, so hearing it
// soon after the write ends the wait soon after the lease really ends.
func (n *Node) AnnounceLease(version string) {
	msg, _ := json.Marshal(hint{Broker: n.cfg.Meta.BrokerID, Lease: version})
	n.queue.QueueBroadcast(broadcast{name: "lease", msg: msg})
}

// Leave tells the others this broker is going (graceful shutdown), then
// stops gossiping.
func (n *Node) Leave(timeout time.Duration) error {
	err := n.ml.Leave(timeout)
	n.Shutdown()
	return err
}

// Shutdown stops gossiping without a goodbye (the others notice by
// failure detection).
func (n *Node) Shutdown() {
	n.stopped.Do(func() {
		close(n.stop)
		_ = n.ml.Shutdown()
		<-n.joined
	})
}

// hint is a gossip message: a metadata sequence, or a broker's lease
// version.
type hint struct {
	Seq    int64  `json:"seq,omitempty"`
	Broker int32  `json:"broker,omitempty"`
	Lease  string `json:"lease,omitempty"`
}

func (n *Node) heard(data []byte) {
	var h hint
	if json.Unmarshal(data, &h) != nil {
		return
	}
	if h.Lease != "" {
		if n.cfg.OnLease != nil && h.Broker != n.cfg.Meta.BrokerID {
			n.cfg.OnLease(h.Broker, h.Lease)
		}
		return
	}
	if h.Seq <= 0 {
		return
	}
	for {
		cur := n.seq.Load()
		if h.Seq <= cur {
			return
		}
		if n.seq.CompareAndSwap(cur, h.Seq) {
			break
		}
	}
	if n.cfg.OnHint != nil {
		n.cfg.OnHint(h.Seq)
	}
}

// broadcast is a gossip message; a newer one of the same name replaces an
// older one in the queue.
type broadcast struct {
	name string
	msg  []byte
}

func (b broadcast) Invalidates(o memberlist.Broadcast) bool {
	other, ok := o.(broadcast)
	return ok && other.name == b.name
}
func (b broadcast) Message() []byte { return b.msg }
func (b broadcast) Finished()       {}
func (b broadcast) Name() string    { return b.name }

type delegate Node

func (d *delegate) NodeMeta(int) []byte { return d.meta }
func (d *delegate) NotifyMsg(b []byte)  { (*Node)(d).heard(b) }
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}

// LocalState and MergeRemoteState carry the newest metadata seq in
// memberlist's periodic full sync, so a hint lost on the way still arrives.
func (d *delegate) LocalState(bool) []byte {
	b, _ := json.Marshal(hint{Seq: d.seq.Load()})
	return b
}
func (d *delegate) MergeRemoteState(buf []byte, _ bool) { (*Node)(d).heard(buf) }

type events Node

func (e *events) NotifyJoin(node *memberlist.Node)   { e.track(node, true) }
func (e *events) NotifyLeave(node *memberlist.Node)  { e.track(node, false) }
func (e *events) NotifyUpdate(node *memberlist.Node) { e.track(node, true) }

// track copies a node's fields while memberlist holds its lock for the
// callback.
func (e *events) track(node *memberlist.Node, up bool) {
	var m Meta
	e.memMu.Lock()
	if up && json.Unmarshal(node.Meta, &m) == nil {
		e.members[node.Name] = Member{Meta: m, Name: node.Name, Addr: node.Address()}
	} else {
		delete(e.members, node.Name) // gone, or not a Tiercel broker
	}
	e.memMu.Unlock()
	e.changed()
}
func (e *events) changed() {
	if e.cfg.OnChange != nil {
		e.cfg.OnChange()
	}
}

type conflicts Node

// NotifyConflict: memberlist refused an announcement of a known name from
// another address. About this node's own name, it is this broker's previous
// process still listed (a restart at a new address) or a second broker
// with this id; about another broker, that broker came back at a new
// address and is taken at it once its old entry is found dead.
func (c *conflicts) NotifyConflict(existing, other *memberlist.Node) {
	var m Meta
	_ = json.Unmarshal(other.Meta, &m)
	if existing.Name != NodeName(c.cfg.Meta.BrokerID) {
		c.cfg.Logger.Info("a broker gossips from a new address while its old one is still listed; it is taken at the new one once the old is found dead",
			"name", other.Name, "old_addr", existing.Address(), "new_addr", other.Address())
		return
	}
	c.readvertiseUntil.Store(time.Now().Add(readvertiseFor).UnixNano())
	c.cfg.Logger.Warn("this broker's name is listed at another address: its previous process (restarted at a new address) or a second broker configured with this node.id",
		"name", other.Name, "addr", other.Address(), "kafka", m.KafkaAddr)
	if c.cfg.OnConflict != nil {
		c.cfg.OnConflict(Member{Meta: m, Name: other.Name, Addr: other.Address()})
	}
}

func splitHostPort(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("bad port %q", port)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, p, nil
}

// slogWriter sends memberlist's log lines to slog at debug level: its
// routine messages (suspicions, refuted probes) are hints, not problems.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Debug("memberlist", "msg", string(trimNewline(p)))
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}
