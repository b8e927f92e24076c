package broker

import (
	"fmt"
	"net"
	"runtime/debug"
	"sort"
	"strconv"
	"time"

	"github.com/tiercel/tiercel/gossip"
)

// buildVersion is the module version the binary was built from.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.Main.Version
	}
	return "unknown"
}

// liveBroker is a broker clients can reach now: this one, or one gossip
// says is up.
type liveBroker struct {
	id     int32
	host   string
	port   int32
	rack   *string
	region string
}

// liveBrokers lists the brokers gossip considers up, ordered by id.
func (b *Broker) liveBrokers() []liveBroker {
	host, port := b.advertised()
	self := liveBroker{id: b.nodeID, host: host, port: port, rack: b.rack(), region: b.cfg.Get("tiercel.region")}
	out := []liveBroker{self}
	if b.gossip == nil {
		return out
	}
	for _, m := range b.gossip.Members() {
		if m.BrokerID == b.nodeID {
			continue
		}
		h, p, err := net.SplitHostPort(m.KafkaAddr)
		if err != nil {
			continue
		}
		pn, _ := strconv.Atoi(p)
		lb := liveBroker{id: m.BrokerID, host: h, port: int32(pn), region: m.Region}
		if m.Rack != "" {
			lb.rack = &m.Rack
		}
		out = append(out, lb)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (b *Broker) liveBrokerIDs() map[int32]bool { return idsOf(b.liveBrokers()) }

func idsOf(brokers []liveBroker) map[int32]bool {
	ids := make(map[int32]bool, len(brokers))
	for _, lb := range brokers {
		ids[lb.id] = true
	}
	return ids
}

// liveBroker finds a broker that is up by id.
func (b *Broker) liveBroker(id int32) (liveBroker, bool) {
	for _, lb := range b.liveBrokers() {
		if lb.id == id {
			return lb, true
		}
	}
	return liveBroker{}, false
}

// startGossip joins the cluster's gossip when tiercel.gossip.listener is
// set; without it the broker is a cluster of one.
func (b *Broker) startGossip() error {
	listener := b.cfg.Get("tiercel.gossip.listener")
	if listener == "" && len(b.cfg.List("tiercel.gossip.seeds")) > 0 {
		listener = "0.0.0.0:7946" // memberlist's usual port
	}
	if listener == "" {
		return nil
	}
	host, port := b.advertised()
	n, err := gossip.Start(gossip.Config{
		Meta: gossip.Meta{
			BrokerID: b.nodeID, KafkaAddr: net.JoinHostPort(host, strconv.Itoa(int(port))),
			Rack: b.cfg.Get("broker.rack"), Region: b.cfg.Get("tiercel.region"),
			AdminAddr: b.cfg.Get("tiercel.http.addr"), Version: buildVersion(), Incarnation: b.incarnation,
		},
		BindAddr:      listener,
		AdvertiseAddr: b.cfg.Get("tiercel.gossip.advertised.listener"),
		Seeds:         b.cfg.List("tiercel.gossip.seeds"),
		Local:         b.cfg.Bool("tiercel.gossip.local"),
		Logger:        b.logger,
		OnHint:        func(int64) { b.kickMetadata() },
		OnChange:      b.noteMembershipChange, // a move's target may have come up; balance
		OnLease:       b.heardLease,
		OnConflict: func(other gossip.Member) {
			if other.Incarnation != "" && other.Incarnation == b.previousIncarnation {
				b.logger.Info("this broker's previous process is still listed at its old address; the others take this one once they find it gone",
					"node_id", b.nodeID, "old_kafka_addr", other.KafkaAddr)
				return
			}
			b.logger.Error("another broker gossips with this broker's node.id: two brokers must never share an id (the broker lease decides which one serves)",
				"node_id", b.nodeID, "other_kafka_addr", other.KafkaAddr, "other_incarnation", other.Incarnation)
		},
	})
	if err != nil {
		return fmt.Errorf("gossip: %w", err)
	}
	b.gossip = n
	if b.lease != nil {
		n.AnnounceLease(b.lease.currentVersion())
	}
	b.logger.Info("gossip listening", "addr", n.Addr(), "seeds", b.cfg.List("tiercel.gossip.seeds"))
	return nil
}

// kickMetadata asks the metadata poll loop to catch up now.
func (b *Broker) kickMetadata() {
	select {
	case b.meta.kick <- struct{}{}:
	default:
	}
}

// announce tells the other brokers the metadata log reached seq.
func (b *Broker) announce(seq int64) {
	if b.gossip != nil {
		b.gossip.Announce(seq)
	}
}

// leaveGossip says goodbye so the others stop routing to this broker at
// once rather than after failure detection.
func (b *Broker) leaveGossip() {
	if b.gossip != nil {
		_ = b.gossip.Leave(2 * time.Second)
	}
}

// GossipAddr is the address other brokers reach this one's gossip at
// (their seed), or "" without gossip.
func (b *Broker) GossipAddr() string {
	if b.gossip == nil {
		return ""
	}
	return b.gossip.Addr()
}
