package broker

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/tiercel/tiercel/broker/storage"
	"github.com/tiercel/tiercel/internal/config"
	"github.com/tiercel/tiercel/internal/recordbatch"
)

// errorCode maps a classified error to its Kafka error code.
func errorCode(err error) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, storage.ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange.Code
	case errors.Is(err, storage.ErrSealed):
		return kerr.NotLeaderForPartition.Code
	case errors.Is(err, storage.ErrOutOfOrderSequence):
		return kerr.OutOfOrderSequenceNumber.Code
	case errors.Is(err, storage.ErrInvalidProducerEpoch):
		return kerr.InvalidProducerEpoch.Code
	case errors.Is(err, storage.ErrUnknownProducerID):
		return kerr.UnknownProducerID.Code
	case errors.Is(err, storage.ErrCorruptLog), errors.Is(err, storage.ErrStorage), errors.Is(err, storage.ErrClosed):
		return kerr.KafkaStorageError.Code
	case errors.Is(err, recordbatch.ErrTooLarge):
		return kerr.MessageTooLarge.Code
	case errors.Is(err, recordbatch.ErrCorrupt):
		return kerr.CorruptMessage.Code
	case errors.Is(err, recordbatch.ErrUnsupported):
		return kerr.UnsupportedForMessageFormat.Code
	case errors.Is(err, recordbatch.ErrInvalid):
		return kerr.InvalidRecord.Code
	case errors.Is(err, config.ErrInvalid), errors.Is(err, config.ErrUnknown):
		return kerr.InvalidConfig.Code
	case errors.Is(err, errInvalidTopic):
		return kerr.InvalidTopicException.Code
	case errors.Is(err, errTopicExists):
		return kerr.TopicAlreadyExists.Code
	case errors.Is(err, errUnknownTopic):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, errInvalidPartitions):
		return kerr.InvalidPartitions.Code
	case errors.Is(err, errInvalidReplication):
		return kerr.InvalidReplicationFactor.Code
	}
	return kerr.UnknownServerError.Code
}

func errMessage(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}
