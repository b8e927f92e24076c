package broker_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tiercel/tiercel/internal/brokertest"
)

// TestReplicaReassignment: AlterPartitionReassignments moves a replicated
// partition's replicas while an idempotent acks=all producer runs: the
// added replica copies the log and joins the ISR, the leader hands over
// when it is itself being removed, the replicas and ISR narrow to the
// target, the removed replicas delete their copies, and every acknowledged
// record is there once and in order on every new replica. A reassignment
// can be cancelled, and bad ones get INVALID_REPLICA_ASSIGNMENT.
func TestReplicaReassignment(t *testing.T) {
	brokers := startCluster(t, 4, "tiercel.replica.isr.check.ms=200")
	addr := brokers[0].Addr()
	// Not tiered: the new replicas can only copy from the leader.
	if err := brokertest.CreateTopicWithReplicas(ctx(t), client(t, addr), "mv", [][]int32{{1, 2, 3}, {2, 3, 1}, {3, 1, 2}},
		map[string]string{"remote.storage.enable": "false", "min.insync.replicas": "2"}); err != nil {
		t.Fatal(err)
	}
	for _, br := range brokers {
		brokertest.WaitFor(t, "every broker to know the topic", func() bool { return partitionsOf(t, br.Addr(), "mv") != nil })
	}

	// A producer runs through the whole reassignment.
	p := client(t, addr, kgo.DefaultProduceTopic("mv"), kgo.RequiredAcks(kgo.AllISRAcks()))
	sent := sentLog{}
	adm := admin(t, addr)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var produceErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i += 50 {
			select {
			case <-stop:
				return
			default:
			}
			var recs []*kgo.Record
			for j := i; j < i+50; j++ {
				recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprint(j)), Value: []byte(fmt.Sprint(j))})
			}
			if err := p.ProduceSync(ctx(t), recs...).FirstErr(); err != nil {
				produceErr = err
				return
			}
			for _, r := range recs {
				sent[r.Partition] = append(sent[r.Partition], string(r.Value))
			}
		}
	}()
	brokertest.WaitFor(t, "records before the reassignment", func() bool {
		hw, err := adm.ListEndOffsets(ctx(t), "mv")
		return err == nil && hw["mv"][0].Offset > 0 && hw["mv"][1].Offset > 0
	})

	req := kadm.AlterPartitionAssignmentsReq{}
	req.Assign("mv", 0, []int32{2, 3, 4}) // the leader (1) leaves
	req.Assign("mv", 1, []int32{2, 4, 1}) // a follower (3) leaves
	res, err := adm.AlterPartitionAssignments(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Sorted() {
		if r.Err != nil {
			t.Fatalf("reassign %s-%d: %v %s", r.Topic, r.Partition, r.Err, r.ErrMessage)
		}
	}
	listed, err := adm.ListPartitionReassignments(ctx(t), kadm.TopicsSet{"mv": {0: {}, 1: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if r := listed["mv"][0]; fmt.Sprint(r.Replicas, r.AddingReplicas, r.RemovingReplicas) != "[2 3 4 1] [4] [1]" {
		t.Fatalf("listed reassignment of mv-0: %+v", listed["mv"])
	}

	want := map[int32][]int32{0: {2, 3, 4}, 1: {2, 4, 1}, 2: {3, 1, 2}}
	done := func(a string) bool {
		for _, part := range partitionsOf(t, a, "mv") {
			isr := slices.Clone(part.ISR)
			slices.Sort(isr)
			w := slices.Clone(want[part.Partition])
			slices.Sort(w)
			if !slices.Equal(part.Replicas, want[part.Partition]) || !slices.Equal(isr, w) || !slices.Contains(w, part.Leader) {
				return false
			}
		}
		return true
	}
	for _, br := range brokers {
		brokertest.WaitFor(t, "the reassignments done as broker "+br.Addr()+" sees them", func() bool { return done(br.Addr()) })
	}
	listed, err = adm.ListPartitionReassignments(ctx(t), kadm.TopicsSet{"mv": {0: {}, 1: {}}})
	if err != nil || len(listed["mv"]) != 0 {
		t.Fatalf("reassignments listed after they finished: %v %+v", err, listed)
	}
	close(stop)
	wg.Wait()
	if produceErr != nil {
		t.Fatalf("producing during the reassignment: %v", produceErr)
	}
	total := 0
	for _, vs := range sent {
		total += len(vs)
	}
	if len(sent[0]) == 0 || len(sent[1]) == 0 {
		t.Fatalf("the producer did not reach both partitions: %d and %d records", len(sent[0]), len(sent[1]))
	}
	sent.check(t, consume(t, brokers[3].Addr(), "mv", total))

	// Bad requests, and a cancelled reassignment.
	bad := kadm.AlterPartitionAssignmentsReq{}
	bad.Assign("mv", 2, []int32{3, 3})
	bad.Assign("mv", 1, []int32{2, 9})
	if res, err := adm.AlterPartitionAssignments(ctx(t), bad); err != nil {
		t.Fatal(err)
	} else {
		for _, r := range res.Sorted() {
			if !errors.Is(r.Err, kerr.InvalidReplicaAssignment) || r.ErrMessage == "" {
				t.Fatalf("reassign %s-%d to a bad set: %v %q", r.Topic, r.Partition, r.Err, r.ErrMessage)
			}
		}
	}
	// Cancelled right after it started (it cannot have finished: the new
	// replica has not even learnt of it within a metadata poll): the
	// replicas go back to the original ones, in their order.
	start := kadm.AlterPartitionAssignmentsReq{}
	start.Assign("mv", 2, []int32{4, 1, 2})
	cancel := kadm.AlterPartitionAssignmentsReq{}
	cancel.CancelAssign("mv", 2)
	for _, r := range []kadm.AlterPartitionAssignmentsReq{start, cancel} {
		res, err := adm.AlterPartitionAssignments(ctx(t), r)
		if err != nil || res["mv"][2].Err != nil {
			t.Fatalf("start or cancel: %v %+v", err, res)
		}
	}
	for _, br := range brokers {
		brokertest.WaitFor(t, "mv-2 back on its replicas", func() bool {
			ps := partitionsOf(t, br.Addr(), "mv")
			return len(ps) == 3 && fmt.Sprint(ps[2].Replicas) == "[3 1 2]" && len(ps[2].ISR) == 3
		})
	}
	res, err = adm.AlterPartitionAssignments(ctx(t), cancel)
	if err != nil || !errors.Is(res["mv"][2].Err, kerr.NoReassignmentInProgress) {
		t.Fatalf("cancelling again: %v %+v", err, res)
	}

	// On disk: every replica of the target holds exactly what was
	// acknowledged; the replicas removed (and the cancelled addition)
	// deleted their copies.
	for _, br := range brokers {
		br.Close()
	}
	for part, rs := range want {
		for id := int32(1); id <= 4; id++ {
			vs := diskValues(t, brokers[id-1].DataDir(), "mv", part)
			switch {
			case slices.Contains(rs, id) && fmt.Sprint(vs) != fmt.Sprint(sent[part]):
				t.Fatalf("mv-%d on broker %d: %d records, %d acknowledged", part, id, len(vs), len(sent[part]))
			case !slices.Contains(rs, id) && vs != nil:
				t.Fatalf("mv-%d: broker %d, no longer a replica, still holds %d records", part, id, len(vs))
			}
		}
	}
}
