package replica

// EpochStart is the first offset written in a leader epoch (Kafka's
// leader-epoch checkpoint entry).
type EpochStart struct {
	Epoch       int32
	StartOffset int64
}

// EndOffsetFor answers OffsetForLeaderEpoch from a log's epoch history
// (ascending) and log end offset: the largest epoch at most epoch, and the
// offset where it ended (the start of the next epoch, or leo for the last
// one). No such epoch: (-1, -1), Kafka's UNDEFINED.
func EndOffsetFor(epochs []EpochStart, leo int64, epoch int32) (int32, int64) {
	for i := len(epochs) - 1; i >= 0; i-- {
		if epochs[i].Epoch <= epoch {
			if i == len(epochs)-1 {
				return epochs[i].Epoch, leo
			}
			return epochs[i].Epoch, epochs[i+1].StartOffset
		}
	}
	return -1, -1
}

// TruncationOffset is where a follower truncates its log before fetching
// from a new leader (KIP-101, KIP-279): it asked for the end of its latest
// epoch and the leader answered (leaderEpoch, leaderEnd). If the follower
// has that epoch it keeps what both logs hold of it, and is done. If not,
// it truncates to the end of its largest epoch below the answer and is not
// done: it asks again with its new latest epoch (each round removes at
// least one epoch, so this ends). With no epoch in common (leaderEpoch -1,
// or none of the follower's is that old) it keeps what is below floor,
// its high watermark, which is committed and so on every leader.
func TruncationOffset(epochs []EpochStart, leo, floor int64, leaderEpoch int32, leaderEnd int64) (offset int64, done bool) {
	if leaderEpoch < 0 {
		return min(floor, leo), true
	}
	e, end := EndOffsetFor(epochs, leo, leaderEpoch)
	switch {
	case e < 0:
		return min(floor, leo), true
	case e != leaderEpoch:
		return min(end, leo), false
	default:
		return min(end, leaderEnd, leo), true
	}
}
